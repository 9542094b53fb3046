"""Building blocks of the scenario schema: field types with units, distributions, arrivals.

The strict base class (frozen, unknown keys refused with a "did you mean"), the field
types that parse units, and the specs of service-time distributions and arrival
processes, each able to ``build()`` its runtime object. :mod:`sim.model.schema` assembles them
into a scenario.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
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
from sim.model.units import format_duration, parse_duration, parse_rate


class _Missing:
    """The value of a key that was not given (``None`` may be a value someone wrote)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FieldError(ValueError):
    """A rule broken by a field below the model being validated; ``path`` is relative to it.

    ``value`` is the offending value, or :data:`MISSING` when the problem is an absent key;
    the message says what is allowed (it follows "got VALUE; " in what the user reads).
    """

    def __init__(self, message: str, path: tuple[str | int, ...], value: object) -> None:
        super().__init__(message)
        self.path = path
        self.value = value


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
    close = isinstance(value, str) and difflib.get_close_matches(value.lower(), ["unbounded"], cutoff=0.6)
    hint = "did you mean 'unbounded'? " if close else ""
    raise ValueError(f"{hint}must be an integer >= 0 (0 = no queue at all) or 'unbounded'")


Int = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[float, BeforeValidator(_not_bool)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
NonNegativeDuration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
PositiveRate = Annotated[float, BeforeValidator(parse_rate), Field(gt=0)]
NonNegativeRate = Annotated[float, BeforeValidator(parse_rate), Field(ge=0)]
Capacity = Annotated[int | None, BeforeValidator(_capacity)]
NAME_PATTERN = r"^[a-z0-9_-]+$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    """Base of every scenario block: frozen, and unknown keys are errors with a suggestion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), known, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    # The message is built here and passed whole: pydantic fills ``{name}``
                    # placeholders in a template, and a key may itself contain braces.
                    raise PydanticCustomError(
                        "unknown_key",
                        "{message}",
                        {"message": f"unknown key; {hint}allowed here: {', '.join(cls.model_fields)}", "key": key},
                    )
        return data


def _read_numbers(info: ValidationInfo, file: str, what: str) -> tuple[float, ...]:
    """Read one number per row (first column; a header row is allowed) from a file next to the scenario."""
    base = Path((info.context or {}).get("base_dir", "."))
    path = base / file
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise FieldError(
            f"cannot read {str(path)!r} ({reason}); give a CSV file with one {what} in "
            "seconds per row, with a path relative to the scenario file",
            ("file",),
            file,
        ) from None
    except UnicodeDecodeError:
        raise FieldError(
            f"{str(path)!r} is not a text file; give a CSV file with one {what} in seconds per row",
            ("file",),
            file,
        ) from None
    values: list[float] = []
    for number, line in enumerate(lines, start=1):
        cell = line.split(",")[0].strip()
        if not cell:
            continue
        try:
            values.append(float(cell))
        except ValueError:
            if number == 1 and not values:
                continue  # a header row
            raise FieldError(
                f"row {number} of {str(path)!r} is {cell!r}, not a number; "
                f"give one {what} in seconds per row",
                ("file",),
                file,
            ) from None
        if not math.isfinite(values[-1]) or values[-1] < 0:
            raise FieldError(
                f"row {number} of {str(path)!r} is {cell!r}; every {what} must be a finite number >= 0",
                ("file",),
                file,
            )
    if not values:
        raise FieldError(f"{str(path)!r} holds no {what}s; give one number (seconds) per row", ("file",), file)
    return tuple(values)


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


class LognormalSpec(Strict):
    """Give the mean and either ``cv`` (std / mean) or ``sigma`` (the log-space standard deviation)."""

    dist: Literal["lognormal"]
    mean: PositiveDuration
    cv: Annotated[Number, Field(gt=0)] | None = None
    sigma: Annotated[Number, Field(gt=0)] | None = None

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
    cv: Annotated[Number, Field(gt=0)]

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

    def build(self) -> arrivals.ArrivalProcess:
        return arrivals.TraceArrivals(self._times)


ArrivalSpec = Annotated[
    PoissonSpec | ConstantArrivalSpec | BurstSpec | PiecewiseSpec | TraceSpec,
    Field(discriminator="process"),
]
PROCESSES = ("poisson", "constant", "burst", "piecewise", "trace")
