"""qsim plan: targets, the bisection, and agreement with Erlang C."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy.optimize import brentq

from sim.analysis import theory
from sim.cli import EXIT_BAD_INPUT, EXIT_NO_ANSWER, main
from sim.experiments.executors import InProcess
from sim.experiments.planning import Plan, Planner
from sim.experiments.runner import Runner
from sim.experiments.specs import parse_plan
from sim.experiments.sweep import experiment_from_dict
from sim.experiments.targets import parse_target, parse_value
from sim.model.scenario import ScenarioError
from tests.helpers import ROOT

MMC: dict[str, Any] = {
    "name": "mmc-plan", "seed": 17, "replications": 5, "warmup": "100s",
    "producers": [{"arrivals": {"process": "poisson", "rate": "9/s", "stop": "2100s"}}],
    "consumers": {"concurrency": 12, "service": {"dist": "exponential", "mean": "1s"}},
    "report": {"bucket": "50s"},
}  # fmt: skip


def search(data: dict[str, Any], **plan: Any) -> Plan:
    experiment = experiment_from_dict(data)
    spec = parse_plan(plan, experiment.base, "test")
    return Planner(experiment, spec, Runner(InProcess(), experiment.base.seed)).search()


# --- targets ---------------------------------------------------------------------------------------


def test_target_values_take_units() -> None:
    assert [parse_value(v) for v in ("2s", "500ms", "1%", "0.01", "800/s", "3")] == [2.0, 0.5, 0.01, 0.01, 800.0, 3.0]
    base = experiment_from_dict(MMC).base
    target = parse_target(" latency_p99 <= 2s ", base)
    assert (target.metric, target.op, target.value, target.upper) == ("latency_p99", "<=", 2.0, True)
    assert target.holds(2.0)
    assert not target.holds(2.01)
    assert not parse_target("goodput>=800/s", base).upper


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency_p99 = 2s", "write METRIC<=VALUE"),
        ("latency_p98<=2s", "'latency_p98' is not a summary column; did you mean 'latency_p99'?"),
        ("latency_p99<=2 parsecs", "'2 parsecs' is not a value"),
    ],
)
def test_bad_targets_say_how_to_write_one(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_target(text, experiment_from_dict(MMC).base)


# --- the search -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smallest_concurrency_matches_erlang_c() -> None:
    """M/M/c with lambda = 9/s, mu = 1/s and the target ``wait_mean <= 150 ms``.

    Erlang C: Wq = 0.669 s at c = 10, 0.215 s at c = 11, 0.0887 s at c = 12, so the answer is 12.
    The target sits far from both neighbours on purpose: a run of 2,000 s has a mean wait with a
    coefficient of variation of ~0.12 (measured), so over 5 replications the one-sided 95 % bound
    is within ~11 % of the mean. At c = 12 the bound exceeds 150 ms only if the sample mean is
    ~35 % above theory (about 10 standard errors); at c = 11 it is shown to fail unless the mean
    is ~22 % below theory (about 4 standard errors). Either way the planner must answer 12.
    """
    expected = next(c for c in range(10, 21) if theory.mmc(9.0, 1.0, c).wait <= 0.15)
    assert expected == 12
    plan = search(MMC, vary="consumers.concurrency", min=10, max=20, targets=["wait_mean<=150ms"])
    assert plan.answer is not None
    assert plan.answer.value == expected
    assert plan.other_side is not None
    assert plan.other_side.value == expected - 1
    assert plan.integer
    assert plan.answer.meets
    mean, _, upper = plan.answer.bounds["wait_mean<=150ms"]
    assert upper <= 0.15
    # A gross check that the plan reports the mean at its answer: with a standard error of
    # ~5 % (cv 0.12, 5 replications) it is sure to catch only a bias above ~45 % (30 % + 3.09
    # standard errors). The simulator's agreement with Erlang C to 3 % is tests/test_theory.py's.
    assert abs(mean - theory.mmc(9.0, 1.0, 12).wait) < 0.3 * theory.mmc(9.0, 1.0, 12).wait
    assert [p.value for p in plan.probes] == [20, 10, 15, 12, 11]  # bisection, each value once


@pytest.mark.slow
def test_largest_load_matches_erlang_c_within_the_bound_and_tolerance() -> None:
    """12 consumers, the largest arrival rate whose mean wait stays <= 150 ms.

    Erlang C puts the boundary at lambda* = 9.574/s. The planner answers a value shown to meet
    the target, so a little below lambda*: it stops within ``tolerance`` (0.05/s) of where the
    one-sided bound crosses 150 ms, and the bound is at most ~11 % above the mean (cv 0.12, 5+
    replications). Near lambda* the mean wait rises ~0.14 s per 1/s, so 11 % of 150 ms is
    ~0.12/s of load: the answer lies in [lambda* - 0.2, lambda* + 0.1] (the upper slack allows the
    occasional probe that, at 95 % confidence, is passed although its true mean is just above).
    """
    star = brentq(lambda rate: theory.mmc(rate, 1.0, 12).wait - 0.15, 5, 11.9)
    assert star == pytest.approx(9.574, abs=1e-3)
    plan = search(MMC, maximize="producers.0.arrivals.rate", min="8/s", max="11/s", targets=["wait_mean<=150ms"],
                  tolerance=0.05)
    assert plan.answer is not None
    assert plan.other_side is not None
    assert not plan.integer
    assert star - 0.2 <= plan.answer.value <= star + 0.1
    # It narrows the boundary down to the tolerance, unless it stopped between two unsure probes
    # that could not be told apart (then the stretch it reports still holds lambda*, up to the slack).
    if plan.unresolved:
        assert plan.other_side.verdict == "unsure"
        assert plan.answer.value < plan.other_side.value <= star + 0.2
    else:
        assert 0 < plan.other_side.value - plan.answer.value <= 0.05
    assert plan.probes[0].value == 8.0
    assert plan.probes[1].value == 11.0


def test_no_answer_when_even_the_best_end_fails() -> None:
    plan = search(MMC, vary="consumers.concurrency", min=10, max=14, targets=["wait_mean<=1ms"])
    assert plan.answer is None
    assert len(plan.probes) == 1
    assert plan.probes[0].verdict == "fails"


@pytest.mark.slow
def test_the_shipped_capacity_plan_at_reduced_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The 20 k burst at a tenth of its size: 2,000 requests in 1 s, concurrency between 10 and 500.

    Everything scales with the burst (the same work per consumer), so the answer is about a
    tenth of the full one (~450 for 4,480). The answer must meet the target, its neighbour not."""
    out = tmp_path / "plan"
    code = main(["plan", str(ROOT / "scenarios/capacity-plan-burst.yaml"), "--out", str(out), "--workers", "1",
                 "--set", "producers.0.arrivals.count=2000", "--min", "10", "--max", "500", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    answer = json.loads(captured.out)
    assert answer["path"] == "consumers.concurrency"
    assert 380 <= answer["answer"] <= 500
    if answer["unresolved"]:  # stopped between two unsure probes: the boundary is in that stretch
        assert answer["answer"] - 20 <= answer["other_side"] < answer["answer"]
    else:
        assert answer["other_side"] == answer["answer"] - 1
    probes = {p["consumers.concurrency"]: p for p in answer["probes"]}
    assert probes[answer["answer"]]["latency_p99 upper"] <= 2.0
    assert probes[answer["other_side"]]["verdict"] in ("fails", "unsure")
    assert (out / "figures" / "plan.png").stat().st_size > 10_000
    for name in ("summary.csv", "probes.csv", "manifest.json", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0


def test_plan_prints_the_answer_and_the_metrics_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mmc.yaml"
    path.write_text("# M/M/c for a plan.\n" + json.dumps(MMC))
    code = main(["plan", str(path), "--vary", "consumers.concurrency", "--min", "10", "--max", "20",
                 "--target", "wait_mean<=150ms", "--target", "timeout_rate<=1%", "--out", str(tmp_path / "o"),
                 "--workers", "1", "--no-figures"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert stdout.startswith("smallest consumers.concurrency meeting wait_mean<=150ms, timeout_rate<=1% with 95% "
                             "confidence:\n  12 (11 fails them)\n")
    assert "wait_mean: mean" in stdout
    assert "target <= 150ms" in stdout
    assert "goodput:" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--vary: give exactly one of --vary"),
        (["--vary", "consumers.concurrency", "--max", "20", "--target", "wait_mean<=1s"], "--min: missing"),
        (["--vary", "consumers.concurrency", "--min", "10", "--max", "20"], "--target: missing"),
        (["--vary", "consumers.concurrency", "--min", "20", "--max", "10", "--target", "wait_mean<=1s"],
         "plan: min (20) must be below max (10)"),
        (["--vary", "queue.discipline", "--min", "fifo", "--max", "lifo", "--target", "wait_mean<=1s"],
         "the varied field must be a number"),
        (["--vary", "consumers.concurrency", "--min", "0", "--max", "10", "--target", "wait_mean<=1s"],
         "plan min consumers.concurrency=0: consumers.concurrency: got 0; must be greater than or equal to 1"),
        (["--vary", "consumers.concurrency", "--min", "1", "--max", "10", "--target", "wait<=1s"],
         "'wait' is not a summary column"),
        (["--vary", "consumers.concurrency", "--min", "1", "--max", "10", "--target", "wait_mean<=1s",
          "--confidence", "1.5"], "--confidence: got 1.5; must be a number in [0.5, 1)"),
    ],
)
def test_bad_plans_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path = tmp_path / "mmc.yaml"
    path.write_text("# M/M/c for a plan.\n" + json.dumps(MMC))
    code = main(["plan", str(path), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1, err
    assert err.startswith("qsim: error: "), err
    assert message in err, err
    assert not (tmp_path / "o").exists()


def test_check_validates_the_plan_in_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ROOT / "scenarios/capacity-plan-burst.yaml")]) == 0
    assert capsys.readouterr().out.endswith("(capacity-plan-burst, 1 producer(s), plan, ~20,000 requests per run "
                                            "(backlog ~19,700), ~2.9 MB, ~2 s)\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "scenarios/capacity-plan-burst.yaml").read_text().replace("min: 100", "min: 0"))
    assert main(["check", str(bad)]) == EXIT_BAD_INPUT
    assert "plan min consumers.concurrency=0" in capsys.readouterr().err


def test_flags_complete_a_partial_plan_in_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "partial.yaml"
    plan = {"vary": "consumers.concurrency", "min": 10, "max": 20}
    path.write_text("# M/M/c with a plan that leaves the targets to the command line.\n"
                    + json.dumps({**MMC, "plan": plan}))
    assert main(["check", str(path)]) == EXIT_BAD_INPUT  # alone, the file's plan lacks targets
    assert "plan.targets: missing" in capsys.readouterr().err
    code = main(["plan", str(path), "--target", "wait_mean<=150ms", "--out", str(tmp_path / "o"), "--workers", "1",
                 "--no-figures", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["answer"] == 12


def test_a_plan_with_no_answer_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mmc.yaml"
    path.write_text("# M/M/c for a plan.\n" + json.dumps(MMC))
    code = main(["plan", str(path), "--vary", "consumers.concurrency", "--min", "10", "--max", "14",
                 "--target", "wait_mean<=1ms", "--out", str(tmp_path / "o"), "--workers", "1", "--no-figures"])
    captured = capsys.readouterr()
    assert code == EXIT_NO_ANSWER == 3
    assert "none in [10, 14]: even the max does not meet the targets" in captured.out
    assert (tmp_path / "o" / "probes.csv").exists()  # the probes are still written: they say why


class _Plateau(Runner):
    """A runner whose metric depends on the probed value only: clearly above a 1 s target below 20,
    clearly below it from 60 on, and a plateau in between whose replications straddle the target
    (the same spread at every value of it: more replications at one value cannot tell it from another)."""

    def metric(self, point: Any, count: int, column: str) -> Any:
        value = point.values["consumers.concurrency"]
        import numpy as np

        spread = np.random.default_rng(1).normal(0.0, 0.2, count)
        level = 3.0 if value < 20 else (0.2 if value >= 60 else 1.0)
        return level + (spread if 20 <= value < 60 else 0.01 * spread)


def test_the_search_stops_where_neighbouring_unsure_probes_cannot_be_told_apart() -> None:
    """Before, every value of the plateau 20..59 that bisection met was refined to the cap and bisection
    went on down to adjacent values (50, 56, 59, 58...: 20 replications each, as 4463...4480 did in
    the capacity plan). Two neighbouring unsure probes with overlapping intervals now end it."""
    tiny = {**MMC, "warmup": "0s", "producers": [{"arrivals": {"process": "poisson", "rate": "9/s", "count": 5}}]}
    experiment = experiment_from_dict(tiny)  # real (tiny) runs for the tables; the metric is the plateau's
    spec = parse_plan({"vary": "consumers.concurrency", "min": 1, "max": 100, "targets": ["latency_p99<=1s"],
                       "replications": 5, "max_replications": 20}, experiment.base, "test")
    plan = Planner(experiment, spec, _Plateau(InProcess(), 1)).search()
    verdicts = [(p.value, p.verdict, p.replications) for p in plan.probes]
    unsure = [p for p in plan.probes if p.verdict == "unsure"]
    assert len(unsure) == 2, verdicts  # 50 then 56: the second overlaps the first, and the search stops
    assert all(p.replications == 20 for p in unsure)
    assert plan.unresolved
    assert plan.answer is not None
    assert plan.other_side is not None
    assert plan.answer.value == 62
    assert plan.other_side.value == 56
    assert plan.answer.meets
    from sim.output.tables import plan_text

    assert "the boundary lies between 56 and 62" in plan_text(plan)
