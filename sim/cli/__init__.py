"""The ``qsim`` command: ``run``, ``check``, ``compare``, ``plan``, ``evaluate`` (:mod:`sim.cli.evaluate`) and
``animate`` (:mod:`sim.cli.animate`).

Bad input ends with one line on stderr (``qsim: error: <file>: <field>: ...``) and exit
code 2, never a traceback; nothing is written before the scenario (every sweep point, every
compared file, the plan) has been validated. Ctrl-C (exit code 130) and SIGTERM (143) stop
the workers and keep every finished run in ``<out>/cache/``: the same command resumes. A plan
with no value meeting its targets exits with 3.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim.cli import evaluate
from sim.cli.animate import animate_scenario
from sim.cli.arguments import UsageError, parser
from sim.experiments import budget
from sim.experiments.cache import ResultCache
from sim.experiments.executors import Executor, ExecutorError, InProcess, make_executor
from sim.experiments.runner import Result, Runner, SweepResult, run_experiment
from sim.experiments.sweep import experiment_from_dict, load_experiment, starting_replications
from sim.experiments.targets import metric_columns
from sim.model.keeping import requests_kept
from sim.model.scenario import ScenarioError, parse_override, read_scenario_data, split_experiment
from sim.model.schema import MAX_REPLICATIONS, Scenario
from sim.output.progress import ProgressBar as _ProgressBar
from sim.output.progress import note as _note
from sim.output.tables import format_comparison, format_summary, format_sweep, parse_metrics, plan_text

__all__ = ["EXIT_BAD_INPUT", "format_summary", "main"]

EXIT_BAD_INPUT = 2
EXIT_NO_ANSWER = 3
"""``qsim plan`` found no value in the range that meets the targets."""
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run; the message says what was kept."""

    def __init__(self, message: str, code: int = EXIT_INTERRUPTED) -> None:
        super().__init__(message)
        self.code = code


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds exactly like Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


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
    if args.engine is not None:
        overrides["engine"] = args.engine
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
        if runs == 1:
            executor.phase = bar.phase  # one long run: its summary is a step of its own
    return executor


def _execute(args: argparse.Namespace, out: Path, runs: int, many: bool, seed: int, cached: bool,
             work: Callable[[Runner], Any], what: str = "", bar: _ProgressBar | None = None) -> Any:
    """Set up the bar, executor, cache and runner, do ``work``, and turn Ctrl-C or SIGTERM into a clear message."""
    bar = bar or (None if args.json else _ProgressBar(delay=1.0 if many else 2.0, what=what))
    cache = ResultCache(out / "cache" if cached else None, fresh=args.fresh, note=_note)
    runner = None
    try:
        with _executor(args, runs, many, bar) as executor:
            runner = Runner(executor, seed, cache, progress=bar)
            if bar is not None:
                bar.runner = runner
            return work(runner)
    except KeyboardInterrupt as stop:
        finished = 0 if runner is None else runner.computed + runner.cached
        kept = f"; {finished} finished runs are kept in {out / 'cache'}: run the same command to resume"
        if not cached:
            kept = ""
        terminated = isinstance(stop, _Terminated)
        raise _Interrupted(f"{'terminated' if terminated else 'interrupted'}{kept}",
                           EXIT_TERMINATED if terminated else EXIT_INTERRUPTED) from None
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
    metrics = parse_metrics(args.metrics, metric_columns(experiment.base))
    out = _out(args, experiment.name)
    replications = starting_replications(experiment)
    runs = len(experiment.points) * replications
    many = len(experiment.points) > 1
    _afford(args, [point.scenario for point in experiment.points], replications, str(args.scenario), many)
    _note_streaming([point.scenario for point in experiment.points])  # after the refusals: one line if refused
    cached = many or experiment.precision is not None or runs > 1
    began = time.perf_counter()
    what = "points" if many else ""
    bar = None if args.json else _ProgressBar(delay=1.0 if many else 2.0, what=what)
    result = _execute(args, out, runs, many, experiment.base.seed, cached,
                      lambda runner: (run_experiment(experiment, runner, replications), runner), what, bar)
    result, runner = result
    wall_time = time.perf_counter() - began
    from sim.output import report

    phase = None if bar is None else bar.phase
    figures, requests = not args.no_figures, not args.no_requests
    if isinstance(result, SweepResult):
        _written(out, lambda: report.write_sweep(result, out, wall_time=wall_time, x=args.x, figures=figures,
                                                 requests=requests, phase=phase))
        text = format_sweep(result, metrics)
    else:
        assert isinstance(result, Result)
        _written(out, lambda: report.write_results(result, out, seed=experiment.base.seed, wall_time=wall_time,
                                                   executor=runner.executor.description, figures=figures,
                                                   requests=requests, phase=phase))
        text = format_summary(result, metrics)
    if args.json:
        print(json.dumps({"summary": json.loads(result.summary.to_json(orient="records")),
                          "estimates": json.loads(result.estimates.to_json(orient="records"))}, indent=2))
    else:
        print(text)
        if runner.cached:
            print(f"\n{runner.cached} runs from the cache, {runner.computed} computed (--fresh to recompute)")
        print(f"\nresults written to {out}/")
    return 0


def _note_streaming(scenarios: list[Scenario]) -> None:
    """One line on stderr when ``report.requests: auto`` keeps no rows (the first such point says why)."""
    notes = [note for note in (requests_kept(scenario).note for scenario in scenarios) if note]
    if notes:
        _note(notes[0])


def _check(args: argparse.Namespace) -> int:
    """Validate every file (not just up to the first bad one): one line per file."""
    status = 0
    for path in args.scenarios:
        try:
            experiment = load_experiment(path)
            evaluate.check(path)
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
    metrics = parse_metrics(args.metrics, metric_columns(first))
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
        print(format_comparison(comparison, metrics))
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
                          "unresolved": plan.unresolved,
                          "probes": report.probes_frame(plan).to_dict("records")}, indent=2, default=str))
    else:
        print(plan_text(plan))
        print(f"\nresults written to {out}/")
    return EXIT_NO_ANSWER if plan.answer is None else 0


def _yaml(text: str | None) -> Any:
    """A ``--min``/``--max`` value read like ``--set`` reads values (``100`` a number, ``100/s`` text)."""
    return None if text is None else parse_override(f"value={text}")[1]


def _evaluate(args: argparse.Namespace) -> int:
    return evaluate.run(args, evaluate.Helpers(_overrides, _out, _execute, _written))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"run": _run, "check": _check, "compare": _compare,
                                                             "plan": _plan, "evaluate": _evaluate,
                                                             "animate": animate_scenario}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` and return the exit code (2 for bad input, 3 for a plan with no
    answer, 130 when interrupted, 143 when terminated)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return _main(argv)
    finally:
        if in_main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (ScenarioError, ExecutorError, UsageError) as error:
        print(f"qsim: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _Interrupted as error:
        print(f"qsim: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt as error:
        terminated = isinstance(error, _Terminated)
        print(f"qsim: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
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
