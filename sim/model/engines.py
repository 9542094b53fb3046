"""Which engine runs a scenario: the SimPy engine models everything; the compiled one, single stages.

``engine: auto`` (the default) runs the compiled engine when the scenario is within its reach
and Numba imports, else the SimPy engine; both give the same records, request for request.
What the compiled engine covers is a statement about scenario features, so it lives here,
where ``qsim check`` can report it without running anything.
"""

from __future__ import annotations

from typing import Literal

from sim.model.schema import Scenario

Engine = Literal["auto", "simpy", "compiled"]
ENGINES = ("auto", "simpy", "compiled")


def compiled_unsupported(scenario: Scenario) -> str | None:
    """The first feature of ``scenario`` the compiled engine does not model (a field path), or None."""
    if scenario.stages is not None and len(scenario.stages) > 1:
        return "stages (more than one)"
    if scenario.faults:
        return "faults"
    prefix = "stages.0." if scenario.stages is not None else ""
    stage = scenario.stage_list[0]
    consumers = stage.consumers
    features = (
        ("queue.delivery", stage.queue.delivery), ("queue.broker", stage.queue.broker),
        ("consumers.scaling", consumers.scaling),
        ("consumers.memory_mb", consumers.memory_mb), ("consumers.timeout", consumers.timeout),
        ("consumers.failure", consumers.failure), ("consumers.slowdowns", consumers.slowdowns),
        ("consumers.autoscale", consumers.autoscale),
    )  # fmt: skip
    for path, value in features:
        if value:
            return prefix + path
    for index, producer in enumerate(scenario.producers):
        if producer.retry is not None:
            return f"producers.{index}.retry"
        if producer.failure is not None:
            return f"producers.{index}.failure"
        if producer.key is not None:
            return f"producers.{index}.key"
    return None
