"""Choosing the engine for a run, and running it: ``engine: auto | simpy | compiled``.

The SimPy engine (:mod:`sim.engine.simulation`) is the reference and models everything; the
compiled engine (:mod:`sim.engine.compiled`) models single-stage scenarios with fixed consumer
pools, much faster, with the same records request for request. ``auto`` takes the compiled
engine when it can.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np

from sim.engine.simulation import ClockCallback, RunRecords, simulate
from sim.model.engines import compiled_unsupported
from sim.model.scenario import ScenarioError
from sim.model.schema import Scenario


@cache
def numba_available() -> bool:
    """Whether Numba imports here (it is a dependency, but a platform may lack a wheel)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def engine_for(scenario: Scenario) -> str:
    """``"compiled"`` or ``"simpy"``: what will run ``scenario``; a one-line error if ``compiled`` cannot."""
    missing = compiled_unsupported(scenario)
    if scenario.engine == "simpy":
        return "simpy"
    if scenario.engine == "compiled":
        where = str(scenario.source) if scenario.source is not None else "scenario"
        if missing is not None:
            raise ScenarioError(f"{where}: engine: got 'compiled'; the compiled engine does not model {missing}; "
                                "use engine: auto or simpy")
        if not numba_available():
            raise ScenarioError(f"{where}: engine: got 'compiled', but numba is not installed; pip install numba, "
                                "or use engine: auto")
        return "compiled"
    return "compiled" if missing is None and numba_available() else "simpy"


def simulate_with(scenario: Scenario, seeds: np.random.SeedSequence,
                  clock: ClockCallback | None = None) -> RunRecords:
    """Run ``scenario`` once on the engine it asks for (or the one ``auto`` picks)."""
    if engine_for(scenario) == "simpy":
        return simulate(scenario, seeds, clock)
    from sim.engine.compiled.driver import simulate_compiled

    return dataclasses.replace(simulate_compiled(scenario, seeds, clock), engine="compiled")
