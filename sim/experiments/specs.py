"""The experiment blocks of a scenario file, validated like the scenario: ``sweep``, ``precision``, ``plan``.

They say how to run a scenario, not what it is, so they are not part of :class:`Scenario`; but
they are read with the same strict models (unknown keys refused with a "did you mean") and
their errors are the same one line, naming the file and the field (``sweep.queue.capacity``,
``precision.relative``, ``plan.min``, or the flag ``--min`` for a value given on the command
line). Whether a metric is a summary column depends on the scenario (its percentiles, its
stages), so the columns are handed to validation in its context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, PrivateAttr, RootModel, ValidationError, ValidationInfo, model_validator

from sim.experiments.targets import PlanSpec, Target, metric_columns, read_target
from sim.model.errors import MISSING, UNSHOWN, FieldError, ScenarioError, describe, did_you_mean
from sim.model.explain import format_validation_error
from sim.model.schema import EXPERIMENT_KEYS, MAX_REPLICATIONS, Scenario
from sim.model.specs import Int, Number, Strict

NOT_SWEPT = ("name", "seed", "replications")
"""Top-level fields a sweep cannot vary: they name the results or set up the replications."""

_SWEEP_HELP = "must be a mapping of field paths to lists of values, e.g. {producers.0.arrivals.rate: [200/s, 400/s]}"


def _text(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")


class SweepSpec(RootModel[dict[str, list[Any]]]):
    """A grid: field paths (as ``--set`` takes them) to the values each takes; every combination a point."""

    @model_validator(mode="before")
    @classmethod
    def _grid(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data:
            raise FieldError(_SWEEP_HELP, (), data)
        for key, values in data.items():
            if not isinstance(key, str) or not key.strip() or "" in key.split("."):
                raise FieldError(f"got the key {describe(key)}; keys are field paths like queue.discipline",
                                 (), UNSHOWN)
            top = key.split(".")[0]
            if top in NOT_SWEPT:
                raise FieldError("cannot be swept; every point shares the name, seed and replications (that is "
                                 "what makes points comparable); sweep a field of the model instead", (key,), UNSHOWN)
            if top in EXPERIMENT_KEYS:
                raise FieldError(f"cannot be swept; {top} says how to run the scenario, it is not a field of the "
                                 "model", (key,), UNSHOWN)
            if not isinstance(values, list) or not values:
                raise FieldError("must be a non-empty list of values, e.g. [fifo, lifo]", (key,), values)
            texts = [_text(value) for value in values]
            repeated = next((value for value, text in zip(values, texts, strict=True) if texts.count(text) > 1),
                            MISSING)
            if repeated is not MISSING:
                raise FieldError(f"{describe(repeated)} appears twice; list each value once", (key,), UNSHOWN)
        return data


def _share(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError("must be a number between 0 and 1 (0.05 = a half-width of 5 % of the mean)")
    return value


def _confidence(value: float) -> float:
    if not 0.5 <= value < 1:
        raise ValueError("must be a number in [0.5, 1), e.g. 0.95")
    return value


def _tolerance(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a finite number > 0 (in the field's unit: seconds, per second)")
    return value


def _check_metric(metric: str, info: ValidationInfo) -> str:
    columns = (info.context or {}).get("columns")
    if columns is not None and metric not in columns:
        raise ValueError(f"{did_you_mean(metric, columns)}must be a summary column, e.g. latency_p99, timeout_rate, "
                         f"goodput ({', '.join(columns)})")
    return metric


class Precision(Strict):
    """The stopping rule: add replications until the 95 % half-width of ``metric`` is at most
    ``relative`` x its mean (at every point), or ``max_replications`` are done."""

    metric: Annotated[str, AfterValidator(_check_metric)]
    relative: Annotated[Number, AfterValidator(_share)]
    max_replications: Annotated[Int, Field(ge=2, le=MAX_REPLICATIONS)] = 50


FieldPath = Annotated[str, Field(min_length=1)]


class PlanBlock(Strict):
    """A ``plan:`` block as written (or the same keys gathered from ``qsim plan``'s flags)."""

    vary: FieldPath | None = None
    """Find the smallest value of this field meeting every target (capacity: more is better)."""
    maximize: FieldPath | None = None
    """Find the largest value of this field meeting every target (load: more is worse)."""
    min: Any = None
    max: Any = None
    targets: list[str] | str | None = None
    replications: Annotated[Int, Field(ge=2, le=MAX_REPLICATIONS)] | None = None
    max_replications: Annotated[Int, Field(ge=2, le=MAX_REPLICATIONS)] | None = None
    confidence: Annotated[Number, AfterValidator(_confidence)] = 0.95
    tolerance: Annotated[Number, AfterValidator(_tolerance)] | None = None

    _targets: tuple[Target, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> PlanBlock:
        context = info.context or {}
        label: Callable[[str], str] = context.get("label") or (lambda key: f"plan.{key}")
        if (self.vary is None) == (self.maximize is None):
            raise FieldError(f"give exactly one of {label('vary')} (the smallest value meeting the targets, e.g. "
                             f"consumers.concurrency) or {label('maximize')} (the largest, e.g. "
                             "producers.0.arrivals.rate)", ("vary",), UNSHOWN)
        for bound in ("min", "max"):
            if getattr(self, bound) is None:
                raise FieldError(f"give the {bound}imum value to search", (bound,), MISSING)
        texts = [self.targets] if isinstance(self.targets, str) else list(self.targets or [])
        if not texts:
            raise FieldError("give at least one, e.g. 'latency_p99<=2s'", ("targets",), MISSING)
        columns = context.get("columns", ())
        targets = []
        for index, text in enumerate(texts):
            try:
                targets.append(read_target(text, columns))
            except ValueError as error:
                where = ("targets",) if isinstance(self.targets, str) else ("targets", index)
                raise FieldError(str(error), where, text) from None
        self._targets = tuple(targets)
        most, first = self.max_replications, self.replications
        if most is not None and first is not None and most < first:
            raise FieldError(f"must be >= replications ({first})", ("max_replications",), most)
        return self

    def spec(self) -> PlanSpec:
        """The search this block describes."""
        path = self.vary if self.vary is not None else self.maximize
        assert path is not None  # one of them, by _complete
        return PlanSpec(path=path, low=self.min, high=self.max, targets=self._targets,
                        maximize=self.maximize is not None, replications=self.replications,
                        max_replications=self.max_replications, confidence=self.confidence,
                        tolerance=self.tolerance)


def read_sweep(data: Any, where: str) -> dict[str, list[Any]]:
    """Validate a ``sweep:`` block; raise :class:`ScenarioError` naming ``sweep.<key>``."""
    try:
        return dict(SweepSpec.model_validate(data).root)
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error, data, where, block="sweep")) from None


def read_precision(data: Any, scenario: Scenario, where: str) -> Precision:
    """Validate a ``precision:`` block; its metric must be a summary column of ``scenario``."""
    try:
        return Precision.model_validate(data, context={"columns": metric_columns(scenario)})
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error, data, where, block="precision")) from None


def parse_plan(data: Any, scenario: Scenario, where: str, name: Callable[[str], str] | None = None) -> PlanSpec:
    """Validate a ``plan:`` mapping (or the same keys gathered from the command line).

    ``name`` says how a key is shown in errors: ``plan.min`` for the file (the default),
    ``--min`` for a flag.
    """
    context = {"columns": metric_columns(scenario), "label": name}
    try:
        return PlanBlock.model_validate(data, context=context).spec()
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error, data, where, block="plan", label=name)) from None
