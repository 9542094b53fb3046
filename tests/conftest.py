"""Fixtures shared by the test modules.

``qsim`` runs the command in-process, as a user would type it, and hands back what the user
would see. Tests marked ``slow`` (the statistical agreement with theory, the notebooks, full
runs of bundled scenarios and plans, a local Dask cluster) are skipped by the fast loop
``pytest -m "not slow"`` (under a minute on two cores); ``make test`` runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from tests.helpers import Cli


@pytest.fixture
def qsim(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``qsim("run", path, "--json")`` -> ``(exit code, stdout, stderr)`` of ``qsim run PATH --json``."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session", autouse=True)
def compiled_engine_ready() -> None:
    """Compile the Numba engine before the first test (about a minute on a fresh machine, then cached).

    Otherwise the first test that runs a scenario under ``engine: auto`` pays for it, and one that
    checks stderr sees the progress bar the long first run brings up.
    """
    from sim import scenario_from_dict
    from sim.engine.choice import numba_available
    from sim.experiments.runner import run

    if not numba_available():
        return
    for requests in ("all", "none"):
        run(scenario_from_dict({
            "name": "warm-up", "engine": "compiled", "report": {"requests": requests},
            "producers": [{"name": "p", "arrivals": {"process": "poisson", "rate": 1.0, "count": 10}}],
            "consumers": {"concurrency": 1, "service": {"dist": "exponential", "mean": 0.5}},
        }))
