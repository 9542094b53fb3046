"""The ``qsim`` command: ``run``, ``check``, ``compare`` and ``plan``.

Bad input ends with one line on stderr (``qsim: error: <file>: <field>: ...``) and exit
code 2, never a traceback; nothing is written before the scenario (every sweep point, every
compared file, the plan) has been validated. Ctrl-C ends with exit code 130 and keeps every
finished run in ``<out>/cache/``: the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from sim.about import __version__
from sim.experiments import budget
from sim.experiments.cache import ResultCache
from sim.experiments.executors import Executor, ExecutorError, InProcess, Task, make_executor
from sim.experiments.runner import Result, Runner, SweepResult, run_experiment
from sim.experiments.sweep import experiment_from_dict, load_experiment, starting_replications
from sim.model.scenario import ScenarioError, parse_override, read_scenario_data, split_experiment
from sim.model.schema import MAX_REPLICATIONS, Scenario
from sim.model.units import format_duration
from sim.output.tables import format_comparison, format_summary, format_sweep, plan_text

__all__ = ["EXIT_BAD_INPUT", "format_summary", "main"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """A command line argparse refuses; reported as one line like every other bad input."""


class _Interrupted(Exception):
    """Ctrl-C during a run; the message says what was kept."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message}; see {self.prog} --help")


def _shared() -> tuple[_Parser, _Parser]:
    """Options every running command takes: overrides and output, and where to run."""
    scenario = _Parser(add_help=False)
    scenario.add_argument("--out", type=Path, help="results folder (default: results/<name>)")
    scenario.add_argument("--seed", type=int, help="override the scenario's seed")
    scenario.add_argument("--replications", type=int, help="override the number of replications")
    scenario.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                          help="override a field before validation, e.g. producers.0.arrivals.rate=800/s (repeatable)")
    scenario.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    scenario.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    execution = _Parser(add_help=False)
    execution.add_argument("--workers", type=int, metavar="N",
                           help="local worker processes (default: all cores for sweeps, compare and plan; "
                                "in-process for one scenario)")
    execution.add_argument("--dask", metavar="ADDRESS", help="run on an existing Dask cluster, e.g. tcp://host:8786")
    execution.add_argument("--fresh", action="store_true", help="ignore finished runs in <out>/cache (recompute)")
    return scenario, execution


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qsim", description="Discrete-event simulation of queues in front of bounded compute.")
    parser.add_argument("--version", action="version", version=f"qsim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    scenario, execution = _shared()
    running = commands.add_parser("run", parents=[scenario, execution],
                                  help="run a scenario (or its sweep) and write results/<name>/")
    running.add_argument("scenario", type=Path)
    running.add_argument("--sweep", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                         help="sweep a field over values (repeatable: a grid), e.g. consumers.concurrency=10,20,40")
    running.add_argument("--x", metavar="KEY.PATH", help="the swept field on the curves' x axis (default: the first)")
    checking = commands.add_parser("check", help="validate scenario files (and their sweeps) without running them")
    checking.add_argument("scenarios", type=Path, nargs="+")
    comparing = commands.add_parser("compare", parents=[scenario, execution],
                                    help="run scenarios on the same random numbers and compare them")
    comparing.add_argument("scenarios", type=Path, nargs="+")
    comparing.add_argument("--vary", metavar="KEY.PATH=V1,V2,...",
                           help="compare values of one field of one scenario, e.g. queue.discipline=fifo,lifo")
    planning = commands.add_parser("plan", parents=[scenario, execution],
                                   help="find the smallest capacity (or largest load) that meets targets")
    planning.add_argument("scenario", type=Path)
    direction = planning.add_mutually_exclusive_group()
    direction.add_argument("--vary", metavar="KEY.PATH", help="find the smallest value meeting every target")
    direction.add_argument("--maximize", metavar="KEY.PATH", help="find the largest value meeting every target")
    planning.add_argument("--min", dest="low", metavar="VALUE", help="lower end of the search (units allowed)")
    planning.add_argument("--max", dest="high", metavar="VALUE", help="upper end of the search")
    planning.add_argument("--target", dest="targets", action="append", metavar="METRIC<=VALUE",
                          help="e.g. 'latency_p99<=2s', 'timeout_rate<=1%%' (repeatable: all must hold)")
    planning.add_argument("--confidence", type=float, help="one-sided confidence for every target (default 0.95)")
    planning.add_argument("--max-replications", type=int, help="cap when refining a probe near the boundary")
    planning.add_argument("--tolerance", type=float, help="stop bisecting a real-valued field at this width")
    return parser


class _ProgressBar:
    """Runs done, rate and ETA on stderr; it appears only if the work lasts more than ``delay`` seconds.

    During an in-process run the bar also moves with simulated time, so a single long run shows
    progress too.
    """

    def __init__(self, delay: float, what: str = "") -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1, delay=delay, leave=False, file=sys.stderr, unit="run",
                         bar_format="{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}, {rate_fmt}]")
        self.what = what
        self.runner: Runner | None = None
        self.done = 0
        self.known = 1
        self._horizons: dict[int, float] = {}

    def __call__(self, done: int, known: int) -> None:
        self.done, self.known = done, max(1, known)
        self._show(float(done), "")

    def _show(self, position: float, extra: str) -> None:
        self._bar.total = self.known
        points = ""
        if self.runner is not None and self.what:
            done, asked = self.runner.points
            points = f", {done}/{asked} {self.what}"
        self._bar.set_description_str(f"{self.done}/{self.known} runs{points}{extra}", refresh=False)
        self._bar.update(min(position, float(self.known)) - self._bar.n)  # draws only after the delay

    def within(self, task: Task, now: float) -> None:
        """Progress inside an in-process run, from its simulated time."""
        horizon = self._horizons.get(id(task.scenario))
        if horizon is None:
            scenario = task.scenario
            horizon = scenario.until or max(p.arrivals.build().horizon for p in scenario.producers)
            self._horizons[id(task.scenario)] = horizon
        fraction = min(1.0, now / horizon) if math.isfinite(horizon) and horizon > 0 else 0.5
        self._show(self.done + fraction, f", sim time {format_duration(now)}")

    def close(self) -> None:
        self._bar.close()


def _overrides(args: argparse.Namespace, replications: bool = True) -> dict[str, Any]:
    """``--set`` values, plus ``--seed`` and ``--replications`` as overrides (so the manifest says what ran)."""
    if args.replications is not None and not 1 <= args.replications <= MAX_REPLICATIONS:
        raise ScenarioError(f"--replications: got {args.replications}; give an integer from 1 to {MAX_REPLICATIONS:,}")
    if args.seed is not None and args.seed < 0:
        raise ScenarioError(f"--seed: got {args.seed}; give an integer >= 0")
    if args.workers is not None and args.workers < 1:
        raise ScenarioError(f"--workers: got {args.workers}; give an integer >= 1")
    overrides = dict(parse_override(text) for text in args.overrides)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if replications and args.replications is not None:
        overrides["replications"] = args.replications
    return overrides


def _out(args: argparse.Namespace, name: str) -> Path:
    out: Path = args.out if args.out is not None else Path("results") / name
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out {out}: got a file; give a folder for the results (it is created if missing)")
    return out


def _executor(args: argparse.Namespace, runs: int, many: bool, bar: _ProgressBar | None) -> Executor:
    """All cores for many points, in-process for one scenario, unless ``--workers``/``--dask`` say otherwise."""
    workers = args.workers if args.workers is not None else (None if many else 1)
    executor = make_executor(workers, args.dask, runs)
    if isinstance(executor, InProcess) and bar is not None:
        executor.within = bar.within
    return executor


def _execute(args: argparse.Namespace, out: Path, runs: int, many: bool, seed: int, cached: bool,
             work: Callable[[Runner], Any], what: str = "") -> Any:
    """Set up the bar, executor, cache and runner, do ``work``, and turn Ctrl-C into a clear message."""
    bar = None if args.json else _ProgressBar(delay=1.0 if many else 2.0, what=what)
    cache = ResultCache(out / "cache" if cached else None, fresh=args.fresh)
    runner = None
    try:
        with _executor(args, runs, many, bar) as executor:
            runner = Runner(executor, seed, cache, progress=bar)
            if bar is not None:
                bar.runner = runner
            return work(runner)
    except KeyboardInterrupt:
        finished = 0 if runner is None else runner.computed + runner.cached
        kept = f"; {finished} finished runs are kept in {out / 'cache'}: run the same command to resume"
        if not cached:
            kept = ""
        raise _Interrupted(f"interrupted{kept}") from None
    finally:
        if bar is not None:
            bar.close()


def _written(out: Path, write: Callable[[], object]) -> None:
    try:
        write()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ScenarioError(f"--out {out}: cannot write the results ({reason}); choose another folder") from None


def _afford(args: argparse.Namespace, scenarios: Sequence[Scenario], replications: int, where: str,
            many: bool) -> None:
    """Refuse a command that cannot fit in memory; say so before one that will take minutes."""
    workers = args.workers if args.workers is not None else (None if many else 1)
    budget.afford(scenarios, replications, where, workers, args.dask is not None)


def _run(args: argparse.Namespace) -> int:
    experiment = load_experiment(args.scenario, _overrides(args), sweep=args.sweep)
    if args.x is not None and args.x not in experiment.axes:
        axes = ", ".join(experiment.axes) or "none: this scenario has no sweep"
        raise ScenarioError(f"--x {args.x}: not a swept field; give one of: {axes}")
    out = _out(args, experiment.name)
    replications = starting_replications(experiment)
    runs = len(experiment.points) * replications
    many = len(experiment.points) > 1
    _afford(args, [point.scenario for point in experiment.points], replications, str(args.scenario), many)
    cached = many or experiment.precision is not None or runs > 1
    began = time.perf_counter()
    what = "points" if many else ""
    result = _execute(args, out, runs, many, experiment.base.seed, cached,
                      lambda runner: (run_experiment(experiment, runner, replications), runner), what)
    result, runner = result
    wall_time = time.perf_counter() - began
    from sim.output import report

    if isinstance(result, SweepResult):
        _written(out, lambda: report.write_sweep(result, out, wall_time=wall_time, figures=not args.no_figures,
                                                 x=args.x))
        text = format_sweep(result)
    else:
        assert isinstance(result, Result)
        _written(out, lambda: report.write_results(result, out, seed=experiment.base.seed, wall_time=wall_time,
                                                   figures=not args.no_figures,
                                                   executor=runner.executor.description))
        text = format_summary(result)
    if args.json:
        print(result.summary.to_json(orient="records", indent=2))
    else:
        print(text)
        if runner.cached:
            print(f"\n{runner.cached} runs from the cache, {runner.computed} computed (--fresh to recompute)")
        print(f"\nresults written to {out}/")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Validate every file (not just up to the first bad one): one line per file."""
    status = 0
    for path in args.scenarios:
        try:
            experiment = load_experiment(path)
            scenarios, replications = [point.scenario for point in experiment.points], starting_replications(experiment)
            if experiment.plan is not None:
                from sim.experiments.planning import Planner

                Planner(experiment, experiment.plan, Runner(InProcess(), experiment.base.seed))  # checks min/max
                scenarios, replications = budget.plan_work(experiment, experiment.plan)
            cost = budget.afford(scenarios, replications, str(path), notify=False)
        except ScenarioError as error:
            print(f"qsim: error: {error}", file=sys.stderr)
            status = EXIT_BAD_INPUT
        else:
            scenario = experiment.base
            extra = f", sweep of {len(experiment.points)} points" if experiment.sweep else ""
            extra += ", plan" if experiment.plan is not None else ""
            print(f"{path}: ok ({scenario.name}, {len(scenario.producers)} producer(s){extra}, {cost.text()})")
    return status


def _compare(args: argparse.Namespace) -> int:
    from sim.experiments import compare
    from sim.output import report

    overrides = _overrides(args, replications=False)
    if args.vary is not None:
        if len(args.scenarios) != 1:
            raise ScenarioError(f"--vary {args.vary}: compares values of one scenario; give one scenario file "
                                f"(got {len(args.scenarios)})")
        arms = compare.arms_from_vary(args.scenarios[0], args.vary, overrides)
    else:
        if len(args.scenarios) < 2:
            raise ScenarioError("compare: give two or more scenario files, or one with --vary key=v1,v2")
        arms = compare.arms_from_files(args.scenarios, overrides)
    first = arms.points[0].scenario
    replications = args.replications or (first.replications if first.replications >= 2
                                         else compare.DEFAULT_REPLICATIONS)
    out = _out(args, arms.name)
    _afford(args, [point.scenario for point in arms.points], replications, str(args.scenarios[0]), True)
    began = time.perf_counter()
    comparison = _execute(args, out, len(arms.points) * replications, True, first.seed, True,
                          lambda runner: compare.compare(arms, runner, replications), "scenarios")
    wall_time = time.perf_counter() - began
    _written(out, lambda: report.write_comparison(comparison, out, wall_time=wall_time, figures=not args.no_figures))
    if args.json:
        print(comparison.table.to_json(orient="records", indent=2))
    else:
        print(format_comparison(comparison))
        print(f"\nresults written to {out}/")
    return 0


#: How each plan key is named on the command line, for error messages.
_FLAGS = {"vary": "--vary", "maximize": "--maximize", "min": "--min", "max": "--max", "targets": "--target",
          "replications": "--replications", "max_replications": "--max-replications",
          "confidence": "--confidence", "tolerance": "--tolerance"}


def _plan(args: argparse.Namespace) -> int:
    from sim.experiments.planning import Planner
    from sim.experiments.specs import parse_plan
    from sim.output import report

    overrides = _overrides(args, replications=False)
    # The file's plan: block is merged with the flags before it is validated, so either may
    # supply a key (a file with only vary/min/max and targets on the command line is fine).
    data, extra = split_experiment(read_scenario_data(args.scenario, overrides))
    written = extra.pop("plan", None)
    if written is not None and not isinstance(written, dict):
        raise ScenarioError(f"{args.scenario}: plan: got {written!r}; must be a mapping, e.g. "
                            "{vary: consumers.concurrency, min: 10, max: 100, targets: ['latency_p99<=2s']}")
    experiment = experiment_from_dict({**data, **extra} if isinstance(data, dict) else data,
                                      base_dir=args.scenario.parent, source=args.scenario, where=str(args.scenario))
    spec: dict[str, Any] = dict(written or {})
    flags = {"vary": args.vary, "maximize": args.maximize, "min": _yaml(args.low), "max": _yaml(args.high),
             "targets": args.targets, "replications": args.replications,
             "max_replications": args.max_replications, "confidence": args.confidence, "tolerance": args.tolerance}
    given = {key: value for key, value in flags.items() if value is not None}
    if "vary" in given or "maximize" in given:
        spec.pop("vary", None)
        spec.pop("maximize", None)
    spec.update(given)
    in_file = set(spec) - set(given)
    plan_spec = parse_plan(spec, experiment.base, str(args.scenario),
                           lambda key: f"plan.{key}" if key in in_file else _FLAGS[key])
    out = _out(args, f"{experiment.name}-plan")
    _afford(args, *budget.plan_work(experiment, plan_spec), str(args.scenario), True)
    began = time.perf_counter()

    def work(runner: Runner) -> Any:
        return Planner(experiment, plan_spec, runner).search()

    plan = _execute(args, out, 10**6, True, experiment.base.seed, True, work, "probes")
    wall_time = time.perf_counter() - began
    _written(out, lambda: report.write_plan(plan, out, wall_time=wall_time, figures=not args.no_figures))
    if args.json:
        print(json.dumps({"path": plan.path, "answer": None if plan.answer is None else plan.answer.value,
                          "other_side": None if plan.other_side is None else plan.other_side.value,
                          "probes": report.probes_frame(plan).to_dict("records")}, indent=2, default=str))
    else:
        print(plan_text(plan))
        print(f"\nresults written to {out}/")
    return 0


def _yaml(text: str | None) -> Any:
    """A ``--min``/``--max`` value read like ``--set`` reads values (``100`` a number, ``100/s`` text)."""
    return None if text is None else parse_override(f"value={text}")[1]


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"run": _run, "check": _check, "compare": _compare,
                                                             "plan": _plan}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` and return the exit code (2 for bad input, 130 when interrupted)."""
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (ScenarioError, ExecutorError, _UsageError) as error:
        print(f"qsim: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, _Interrupted) as error:
        message = str(error) if isinstance(error, _Interrupted) else "interrupted"
        print(f"qsim: {message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(f"qsim: error: {budget.out_of_memory()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # e.g. a results or cache folder that cannot be created
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or type(error).__name__
        print(f"qsim: error: {where}{reason}; check the path (--out) and its permissions", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
