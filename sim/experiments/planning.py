"""Capacity planning: the smallest capacity (or the largest load) that meets every target.

The search assumes the targets get easier as the varied field grows (``vary``: concurrency,
batch size) or harder (``maximize``: an arrival rate), and bisects: an integer field down to
adjacent values, a real one down to a tolerance. Each probe runs replications with the same
seed (common random numbers, so neighbouring probes differ by the field, not by luck) and is
judged with one-sided confidence bounds on each target metric's mean over replications:

* **meets** -- every target holds at its bound: for ``latency_p99<=2s`` the upper bound of the
  mean p99 is at most 2 s, i.e. "p99 <= 2 s with 95 % confidence";
* **fails** -- some target is broken even at the other bound (the lower one for ``<=``);
* **unsure** -- the interval straddles a target. The probe is refined with more replications
  (doubling, up to ``max_replications``); still unsure at the cap, it counts as not meeting:
  the answer is only a value *shown* to meet the targets.

The answer is the best value that meets them, with its neighbour on the other side that does
not (the interval the true boundary is in). When a new probe and its unsure neighbour are both
unsure at the cap with overlapping intervals on every target, more replications cannot tell
them apart and bisecting further would only buy more such probes: the search stops and
reports the boundary as the stretch between that probe and the answer (``unresolved``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sim.analysis.estimates import clip_to_range, estimates_table, one_sided_bounds
from sim.experiments.runner import Runner, point_frame
from sim.experiments.sweep import Experiment, Point, build_point, is_number
from sim.experiments.targets import PlanSpec
from sim.model.scenario import ScenarioError

DEFAULT_START = 5
"""Replications at a new probe, at least (fewer give very wide one-sided bounds: t(0.95, 1) = 6.3)."""
DEFAULT_CAP = 4
"""``max_replications`` defaults to this many times the starting replications."""
DEFAULT_STEPS = 100
"""A real-valued field is bisected down to (max - min) / 100 unless ``tolerance`` says otherwise."""


@dataclass
class Probe:
    """One value tried: its replications, the bounds of each target metric and the verdict."""

    order: int
    value: float
    point: Point
    replications: int
    bounds: dict[str, tuple[float, float, float]]
    """Per target metric: mean, lower and upper one-sided bound at the plan's confidence."""
    verdict: str

    @property
    def meets(self) -> bool:
        return self.verdict == "meets"


@dataclass
class Plan:
    """The outcome of a search."""

    spec: PlanSpec
    experiment: Experiment
    seed: int
    integer: bool
    probes: list[Probe]
    answer: Probe | None
    """The best value that meets every target (None: not even the best end of the range does)."""
    other_side: Probe | None
    """The closest probed value beyond the answer that does not meet them."""
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every probe's runs: one row per probe, replication (and row group)."""
    estimates: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per probe (and row group): mean, ci_low and ci_high of every metric."""
    executor: str = ""
    unresolved: bool = False
    """The search stopped between two neighbouring unsure probes that more replications (within the
    cap) could not separate: the boundary lies somewhere between ``other_side`` and ``answer``."""

    @property
    def path(self) -> str:
        return self.spec.path


def _indistinguishable(first: Probe, second: Probe) -> bool:
    """Both unsure at their cap, and every target's interval of one overlaps the other's.

    Bisecting between them would only find more values like them: near the boundary the metric
    changes by less than the replications can resolve, and each probe would cost the cap. The
    boundary is then known only to lie in this unresolved stretch (the search stops there).
    """
    if first.verdict != "unsure" or second.verdict != "unsure":
        return False
    return all(a[1] <= b[2] and b[1] <= a[2] for a, b in
               ((first.bounds[key], second.bounds[key]) for key in first.bounds))


def _judge(spec: PlanSpec, bounds: dict[str, tuple[float, float, float]]) -> str:
    verdicts = []
    for target in spec.targets:
        mean, lower, upper = bounds[target.text]
        if math.isnan(mean):
            verdicts.append("fails")  # the metric is undefined here (nothing served): not shown to hold
        elif target.holds(upper if target.upper else lower):
            verdicts.append("meets")
        elif not target.holds(lower if target.upper else upper):
            verdicts.append("fails")
        else:
            verdicts.append("unsure")
    if "fails" in verdicts:
        return "fails"
    return "meets" if all(v == "meets" for v in verdicts) else "unsure"


class Planner:
    """Bisects ``spec.path`` over ``[spec.low, spec.high]`` with a :class:`Runner`."""

    def __init__(self, experiment: Experiment, spec: PlanSpec, runner: Runner, replications: int | None = None,
                 on_probe: Callable[[Probe], None] | None = None) -> None:
        self.experiment = experiment
        self.spec = spec
        self.runner = runner
        start = spec.replications or replications or max(experiment.base.replications, DEFAULT_START)
        self.start = max(2, start)
        self.cap = max(self.start, spec.max_replications or DEFAULT_CAP * self.start)
        self.on_probe = on_probe
        self.probes: list[Probe] = []
        self._points: dict[float, Point] = {}
        low = self._point(spec.low, "min")
        high = self._point(spec.high, "max")
        self.low, self.high = low.values[spec.path], high.values[spec.path]
        if self.low >= self.high:
            raise ScenarioError(f"plan: min ({spec.low}) must be below max ({spec.high})")
        self.integer = isinstance(self.low, int) and isinstance(self.high, int)
        default = 1.0 if self.integer else (self.high - self.low) / DEFAULT_STEPS
        self.tolerance = max(spec.tolerance or default, 1.0 if self.integer else 0.0)

    def _point(self, value: Any, what: str) -> Point:
        experiment = self.experiment
        where = str(experiment.source) if experiment.source is not None else "scenario"
        try:
            point = build_point(experiment.raw, {self.spec.path: value}, len(self._points), experiment.base_dir,
                                experiment.source, where)
        except ScenarioError as error:
            raise ScenarioError(f"{where}: plan {what} {self.spec.path}={value}: "
                                f"{str(error).removeprefix(where + ': ')}") from None
        value = point.values[self.spec.path]
        if not is_number(value):
            raise ScenarioError(f"{where}: plan {what} {self.spec.path}={value}: the varied field must be a "
                                "number (concurrency, a rate, a duration)")
        self._points[float(value)] = point
        return point

    def probe(self, value: float) -> Probe:
        """Run (or refine) the value until it clearly meets or fails the targets, or the cap is reached."""
        point = self._points.get(float(value)) or self._point(value, "probe")
        count = self.start
        while True:
            self.runner.ensure([point], {point.index: count})
            bounds = {}
            for target in self.spec.targets:
                values = self.runner.metric(point, count, target.metric)
                mean, lower, upper = one_sided_bounds(values, self.spec.confidence)
                bounds[target.text] = (mean, *clip_to_range(target.metric, lower, upper))
            verdict = _judge(self.spec, bounds)
            if verdict != "unsure" or count >= self.cap:
                break
            count = min(self.cap, 2 * count)
        probe = Probe(order=len(self.probes), value=point.values[self.spec.path], point=point, replications=count,
                      bounds=bounds, verdict=verdict)
        self.probes.append(probe)
        if self.on_probe is not None:
            self.on_probe(probe)
        return probe

    def search(self) -> Plan:
        """Bisect between a value that meets the targets and one that does not."""
        good_end, bad_end = (self.low, self.high) if self.spec.maximize else (self.high, self.low)
        good = self.probe(good_end)
        if not good.meets:
            return self._plan(None, good)
        bad = self.probe(bad_end)
        if bad.meets:
            return self._plan(bad, None)
        while abs(good.value - bad.value) > self.tolerance:
            middle = (good.value + bad.value) / 2
            if self.integer:
                middle = math.floor(middle)
                if middle in (good.value, bad.value):
                    break
            trial = self.probe(middle)
            if trial.meets:
                good = trial
                continue
            unresolved = _indistinguishable(trial, bad)
            bad = trial
            if unresolved:
                return self._plan(good, bad, unresolved=True)
        return self._plan(good, bad)

    def _plan(self, answer: Probe | None, other: Probe | None, unresolved: bool = False) -> Plan:
        outcomes = {p.point.index: self.runner.replications_of(p.point, p.replications) for p in self.probes}
        points = [p.point for p in self.probes]
        per_run = point_frame(points, outcomes, [self.spec.path], lambda o: o.summary)
        estimates = estimates_table(per_run, keys=["point", self.spec.path])
        return Plan(spec=self.spec, experiment=self.experiment, seed=self.runner.seed, integer=self.integer,
                    probes=self.probes, answer=answer, other_side=other, summary=per_run, estimates=estimates,
                    executor=self.runner.executor.description, unresolved=unresolved)


def plan(experiment: Experiment, spec: PlanSpec, runner: Runner,
         on_probe: Callable[[Probe], None] | None = None) -> Plan:
    """Run the search described by ``spec`` on ``experiment``'s base scenario."""
    return Planner(experiment, spec, runner, on_probe=on_probe).search()
