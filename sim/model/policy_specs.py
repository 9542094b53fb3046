"""Schema blocks for queue policies: the adaptive-LIFO switch and active queue management.

Rules (with sources in ``docs/modelling.md``): classic RED (Floyd & Jacobson), the encore.dev
article's proportional drop, CoDel (RFC 8289) and Facebook's fail-at-scale queue timeout.
The algorithms themselves live in :mod:`sim.engine.aqm`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim.model.specs import MISSING, FieldError, Int, Name, NonNegativeDuration, Number, PositiveDuration, Strict


class LifoWhenSpec(Strict):
    """When adaptive LIFO switches to LIFO: the queue holds ``length`` requests, or the oldest has waited ``wait``."""

    length: Annotated[Int, Field(ge=1)] | None = None
    wait: NonNegativeDuration | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> LifoWhenSpec:
        if (self.length is None) == (self.wait is None):
            raise FieldError("give exactly one of length (e.g. 100) or wait (e.g. 50ms)", ("length",),
                             MISSING if self.length is None else self.length)
        return self


class RedSpec(Strict):
    """Classic RED (Floyd & Jacobson 1993): early drop on an EWMA of the queue length."""

    policy: Literal["red"]
    min: Annotated[Number, Field(ge=0)]
    max: Annotated[Number, Field(gt=0)]
    max_p: Annotated[Number, Field(gt=0, le=1)] = 0.1
    weight: Annotated[Number, Field(gt=0, le=1)] = 0.002
    classes: list[Name] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RedSpec:
        if self.max <= self.min:
            raise FieldError(f"max must be greater than min ({self.min:g})", ("max",), self.max)
        return self


class ProportionalSpec(Strict):
    """The encore.dev article's RED: drop an arrival with probability length / capacity."""

    policy: Literal["proportional"]
    classes: list[Name] | None = None


class CodelSpec(Strict):
    """CoDel (RFC 8289): drop at the head once sojourn has stayed above ``target`` for an ``interval``."""

    policy: Literal["codel"]
    target: PositiveDuration = 0.005
    interval: PositiveDuration = 0.1


class FailAtScaleSpec(Strict):
    """Facebook's queue timeout (Maurer 2015).

    Drop waits over ``target`` unless the queue was empty within the last ``interval``.
    """

    policy: Literal["fail-at-scale"]
    target: PositiveDuration = 0.005
    interval: PositiveDuration = 0.1


AqmSpec = Annotated[RedSpec | ProportionalSpec | CodelSpec | FailAtScaleSpec, Field(discriminator="policy")]
AQM_POLICIES = ("red", "proportional", "codel", "fail-at-scale")
