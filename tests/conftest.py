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
