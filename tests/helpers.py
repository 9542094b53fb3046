"""Shared helpers: scenarios built from small dicts, exact traces of runs, the CLI runner's type."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sim
from sim.experiments.runner import Result
from sim.model.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]

Cli = Callable[..., tuple[int, str, str]]
"""The ``qsim`` fixture (tests/conftest.py): ``qsim(*argv)`` -> ``(exit code, stdout, stderr)``."""

BASE: dict[str, Any] = {
    "name": "test",
    "producers": [{"name": "clients", "arrivals": {"process": "constant", "rate": "10/s", "count": 4}}],
    "consumers": {"concurrency": 1, "service": {"dist": "constant", "value": "1s"}},
}


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``changes`` into a copy of ``base``.

    Lists, and mappings that name their own kind (``dist:`` or ``process:``), are replaced.
    """
    result = copy.deepcopy(base)
    for key, value in changes.items():
        replaces = isinstance(value, dict) and ("dist" in value or "process" in value)
        if isinstance(value, dict) and isinstance(result.get(key), dict) and not replaces:
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def make_scenario(base_dir: Path | None = None, **changes: Any) -> Scenario:
    """A scenario from :data:`BASE` with ``changes`` merged in (validated like a file)."""
    return sim.scenario_from_dict(merge(BASE, changes), base_dir=base_dir)


def trace(result: Result) -> list[tuple[int, str, float | None, float | None]]:
    """``(request, outcome, start, finish)`` for every request, times rounded for exact comparison."""

    def rounded(value: float) -> float | None:
        return None if value != value else round(value, 9)

    frame = result.requests
    return [
        (int(row.request), str(row.outcome), rounded(row.start), rounded(row.finish))
        for row in frame.itertuples(index=False)
    ]
