"""Building blocks of the scenario schema: field types with units, distributions, arrivals.

The strict base class (frozen, unknown keys refused with a "did you mean"), the field
types that parse units, and the specs of service-time distributions and arrival
processes, each able to ``build()`` its runtime object. :mod:`sim.model.schema` assembles them
into a scenario.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sim.model import arrivals, distributions
from sim.model.datafiles import read_numbers
from sim.model.errors import MISSING, FieldError, did_you_mean
from sim.model.units import format_duration, parse_duration, parse_rate

__all__ = ["MISSING", "FieldError"]  # re-exported: the schema's modules take them from here


def _not_bool(value: object) -> object:
    """Refuse ``true``/``false`` where a number is expected (pydantic would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def _capacity(value: object) -> int | None:
    if value is None or value == "unbounded":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    hint = did_you_mean(value, ["unbounded"])
    raise ValueError(f"{hint}must be an integer >= 0 (0 = no queue at all) or 'unbounded'")


Int = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
MAX_DURATION = 1e9
"""The longest duration, in seconds (about 31 years): up to it the clock (float seconds) still tells
events a microsecond apart; beyond it, sums of times overflow and averages lose all precision."""


def _duration_range(value: float) -> float:
    if abs(value) > MAX_DURATION:
        raise ValueError(f"must be at most {MAX_DURATION:g}s (about 31 years): beyond it the clock cannot tell "
                         "microseconds apart")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_duration_range)]
NonNegativeDuration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0), AfterValidator(_duration_range)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0), AfterValidator(_duration_range)]
MIN_RATE = 1e-9
"""The slowest rate (per second) other than 0: one event in about 30 years."""
MAX_RATE = 1e9
"""The fastest rate (per second): a thousand times what the engine simulates in a second of wall time."""


def _rate_range(value: float) -> float:
    if value != 0 and not MIN_RATE <= value <= MAX_RATE:
        raise ValueError(f"must be between {MIN_RATE:g}/s and {MAX_RATE:g}/s (a rate outside it would put "
                         "events at infinity or at one instant)")
    return value


PositiveRate = Annotated[float, BeforeValidator(parse_rate), Field(gt=0), AfterValidator(_rate_range)]
NonNegativeRate = Annotated[float, BeforeValidator(parse_rate), Field(ge=0), AfterValidator(_rate_range)]
Capacity = Annotated[int | None, BeforeValidator(_capacity)]
NAME_PATTERN = r"^[a-z0-9_-]+$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


BLOCKS: dict[str, type[BaseModel]] = {}
"""Every :class:`Strict` block by class name, so an error can list the keys of the block expected."""


class Strict(BaseModel):
    """Base of every scenario block: frozen, and unknown keys are errors with a suggestion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    also_allowed: ClassVar[tuple[str, ...]] = ()
    """Keys accepted beside the fields (read by someone else, like a scenario's ``sweep``)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        BLOCKS[cls.__name__] = cls

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = [*cls.model_fields, *cls.also_allowed]
            for key in data:
                if key not in known:
                    hint = did_you_mean(str(key), known)
                    # The message is built here and passed whole: pydantic fills ``{name}``
                    # placeholders in a template, and a key may itself contain braces.
                    raise PydanticCustomError(
                        "unknown_key",
                        "{message}",
                        {"message": f"unknown key; {hint}allowed here: {', '.join(known)}", "key": key},
                    )
        return data


def _read_numbers(info: ValidationInfo, file: str, what: str) -> tuple[float, ...]:
    """Read one number per row from a file next to the scenario (see :mod:`sim.model.datafiles`)."""
    base = (info.context or {}).get("base_dir", ".")
    return read_numbers(base, file, what)


# --- service-time distributions -------------------------------------------------------------


class ExponentialSpec(Strict):
    dist: Literal["exponential"]
    mean: PositiveDuration

    def build(self) -> distributions.Distribution:
        return distributions.Exponential(self.mean)


class ConstantSpec(Strict):
    dist: Literal["constant"]
    value: NonNegativeDuration

    def build(self) -> distributions.Distribution:
        return distributions.Constant(self.value)


class UniformSpec(Strict):
    dist: Literal["uniform"]
    low: NonNegativeDuration
    high: NonNegativeDuration

    @model_validator(mode="after")
    def _ordered(self) -> UniformSpec:
        if self.high < self.low:
            raise FieldError(f"high must be >= low ({format_duration(self.low)})", ("high",), self.high)
        return self

    def build(self) -> distributions.Distribution:
        return distributions.Uniform(self.low, self.high)


MIN_CV = 1e-6
"""The smallest coefficient of variation of a lognormal or gamma: below it, use ``dist: constant``."""
MAX_CV = 100.0
"""The largest coefficient of variation of a lognormal or gamma (a standard deviation 100 times the
mean). Beyond it the mean rests on draws too rare for any run to see: a lognormal with cv 100
gets half its mean from draws rarer than 1 in 800, and every tenfold more cv makes them about
ten times rarer still, so a run's average service time would fall far short of ``mean``."""
MAX_SIGMA = math.sqrt(math.log1p(MAX_CV**2))
"""``sigma`` of a lognormal whose cv is :data:`MAX_CV` (about 3.03)."""
_SPREAD_WHY = ("beyond it the mean rests on draws too rare for a run to see, so runs would not reproduce the mean "
               "(use a smaller spread)")


def _cv(value: float) -> float:
    if value < MIN_CV:
        raise ValueError(f"must be at least {MIN_CV:g}; for no spread at all use {{dist: constant, value: ...}}")
    if value > MAX_CV:
        raise ValueError(f"must be at most {MAX_CV:g} (a standard deviation {MAX_CV:g} times the mean); "
                         + _SPREAD_WHY)
    return value


def _sigma(value: float) -> float:
    if not 0 < value <= MAX_SIGMA:
        raise ValueError(f"must be greater than 0 and at most {MAX_SIGMA:.3g} (cv {MAX_CV:g}); " + _SPREAD_WHY)
    return value


Spread = Annotated[Number, AfterValidator(_cv)]
"""A coefficient of variation (standard deviation / mean) within [:data:`MIN_CV`, :data:`MAX_CV`]."""


class LognormalSpec(Strict):
    """Give the mean and either ``cv`` (std / mean) or ``sigma`` (the log-space standard deviation)."""

    dist: Literal["lognormal"]
    mean: PositiveDuration
    cv: Spread | None = None
    sigma: Annotated[Number, AfterValidator(_sigma)] | None = None

    @model_validator(mode="after")
    def _one_spread(self) -> LognormalSpec:
        if self.cv is None and self.sigma is None:
            raise FieldError(
                "give the spread: cv (standard deviation / mean, e.g. 0.5) or sigma (log-space standard deviation)",
                ("cv",),
                MISSING,
            )
        if self.cv is not None and self.sigma is not None:
            raise FieldError("give cv or sigma, not both; remove one", ("sigma",), self.sigma)
        return self

    def build(self) -> distributions.Distribution:
        cv = self.cv if self.cv is not None else math.sqrt(math.expm1(self.sigma**2))  # type: ignore[operator]
        return distributions.Lognormal(self.mean, cv)


class GammaSpec(Strict):
    dist: Literal["gamma"]
    mean: PositiveDuration
    cv: Spread

    def build(self) -> distributions.Distribution:
        return distributions.Gamma(self.mean, self.cv)


class EmpiricalSpec(Strict):
    """Resample durations (seconds, one per row) from ``file``, relative to the scenario file."""

    dist: Literal["empirical"]
    file: str
    _values: tuple[float, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> EmpiricalSpec:
        self._values = _read_numbers(info, self.file, "duration")
        return self

    def build(self) -> distributions.Distribution:
        return distributions.Empirical(self._values)


DistributionSpec = Annotated[
    ExponentialSpec | ConstantSpec | UniformSpec | LognormalSpec | GammaSpec | EmpiricalSpec,
    Field(discriminator="dist"),
]
DISTRIBUTIONS = ("exponential", "constant", "uniform", "lognormal", "gamma", "empirical")


def _fixed_or_distribution(value: Any) -> str:
    # A dict when validating, a spec model when serialising (the manifest): both are distributions.
    return "distribution" if isinstance(value, dict | BaseModel) else "fixed"


Timeout = Annotated[
    Annotated[PositiveDuration, Tag("fixed")] | Annotated[DistributionSpec, Tag("distribution")],
    Discriminator(_fixed_or_distribution),
]
"""A client deadline: a fixed duration, or a patience distribution (``{dist: exponential, mean: 3s}``)."""


# --- arrival processes ----------------------------------------------------------------------


def _check_stop(stop: float | None, begin: float, what: str) -> None:
    """Refuse a window that ends before it begins (it would silently generate nothing)."""
    if stop is not None and stop <= begin:
        raise FieldError(f"stop must be after {what} ({format_duration(begin)})", ("stop",), stop)


class _SteadySpec(Strict):
    """Arrivals at a steady ``rate`` from ``start`` until ``stop`` or ``count`` (poisson, constant)."""

    process: str
    rate: PositiveRate
    start: NonNegativeDuration = 0.0
    stop: NonNegativeDuration | None = None
    count: Annotated[Int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _stops_after_start(self) -> _SteadySpec:
        _check_stop(self.stop, self.start, "start")
        return self


class PoissonSpec(_SteadySpec):
    process: Literal["poisson"]

    def build(self) -> arrivals.ArrivalProcess:
        return arrivals.PoissonArrivals(self.rate, self.start, self.stop, self.count)


class ConstantArrivalSpec(_SteadySpec):
    process: Literal["constant"]

    def build(self) -> arrivals.ArrivalProcess:
        return arrivals.ConstantArrivals(self.rate, self.start, self.stop, self.count)


class BurstSpec(Strict):
    process: Literal["burst"]
    count: Annotated[Int, Field(ge=1)]
    over: NonNegativeDuration = 0.0
    at: NonNegativeDuration = 0.0

    def build(self) -> arrivals.ArrivalProcess:
        return arrivals.BurstArrivals(self.count, self.over, self.at)


class PiecewiseSpec(Strict):
    process: Literal["piecewise"]
    rates: list[tuple[NonNegativeDuration, NonNegativeRate]] = Field(min_length=1)
    stop: NonNegativeDuration | None = None
    count: Annotated[Int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _increasing(self) -> PiecewiseSpec:
        _check_stop(self.stop, self.rates[0][0], "the first rate's time")
        times = [t for t, _ in self.rates]
        for index in range(1, len(times)):
            if times[index] <= times[index - 1]:
                raise FieldError(
                    "the times must increase: [[0s, 100/s], [60s, 900/s], ...]",
                    ("rates", index, 0),
                    times[index],
                )
        return self

    def build(self) -> arrivals.ArrivalProcess:
        return arrivals.PiecewiseArrivals(tuple(self.rates), self.stop, self.count)


class TraceSpec(Strict):
    """Replay arrival timestamps (seconds, one per row) from ``file``, relative to the scenario file."""

    process: Literal["trace"]
    file: str
    _times: tuple[float, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> TraceSpec:
        self._times = tuple(np.sort(_read_numbers(info, self.file, "arrival timestamp")).tolist())
        return self

    @property
    def times(self) -> tuple[float, ...]:
        """The timestamps read, sorted."""
        return self._times

    def build(self) -> arrivals.ArrivalProcess:
        return arrivals.TraceArrivals(self._times)


ArrivalSpec = Annotated[
    PoissonSpec | ConstantArrivalSpec | BurstSpec | PiecewiseSpec | TraceSpec,
    Field(discriminator="process"),
]
PROCESSES = ("poisson", "constant", "burst", "piecewise", "trace")
