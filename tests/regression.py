"""Fingerprints of the bundled scenarios, to hold the engine to identical numbers across refactorings.

A fingerprint is taken from replication 0 of a bundled scenario (its own seed): the SHA-256 of
every request column and of every job column (the records, bit for bit), and the summary's
numbers for each row (``producer/stage``), every column but ``wall_time``, as exact floats
(JSON writes a float's shortest round-trip repr; NaN is stored as null). When the records or
a summary number differ, :func:`differences` says which scenario, which rows and columns moved,
from what to what, and whether the records changed: a change to the engine shows in the
records, one to the summary's arithmetic only in the columns.

Regenerate ``tests/data/regression.json`` from the current code with::

    python -m tests.regression

only when a change is meant to alter results, and say so in the commit message.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import sim
from sim.analysis.metrics import KEY_COLUMNS, LABEL_COLUMNS
from sim.engine.records import Columns
from sim.experiments.replication import simulate_run

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "tests" / "data" / "regression.json"
SCENARIOS = (
    "burst-2k-vs-20k", "fifo-vs-lifo-burst", "tail-drop-vs-drop-oldest", "encore-priority", "encore-red",
    "codel-vs-tail-drop", "adaptive-lifo", "pubsub-fanout", "pipeline",
)  # fmt: skip
FIELDS = ("producer", "arrival", "deadline", "service", "start", "finish", "outcome", "reason", "stage", "request")
UNSTORED = (*KEY_COLUMNS, *LABEL_COLUMNS, "wall_time")
"""Summary columns left out: the row's key (it names the row instead), which engine ran it (both give
the same records: tests/test_compiled.py) and the host-dependent wall time."""

Number = int | float | None
Fingerprint = dict[str, Any]


def records_hash(columns: Columns) -> str:
    """SHA-256 of the raw bytes of every record column, in :data:`FIELDS` order."""
    digest = hashlib.sha256()
    for field in FIELDS:
        digest.update(np.ascontiguousarray(getattr(columns, field)).tobytes())
    return digest.hexdigest()


def _number(value: Any) -> Number:
    if isinstance(value, np.integer | int):
        return int(value)
    number = float(value)
    return None if math.isnan(number) else number


def summary_numbers(summary: pd.DataFrame) -> dict[str, dict[str, Number]]:
    """``{"producer/stage": {column: value}}`` for every summary row, every column but :data:`UNSTORED`."""
    columns = [c for c in summary.columns if c not in UNSTORED]
    return {
        f"{row['producer']}/{row['stage']}": {column: _number(row[column]) for column in columns}
        for _, row in summary.iterrows()
    }


def fingerprint(name: str) -> Fingerprint:
    """Records hashes and summary numbers of replication 0 of a bundled scenario."""
    scenario = sim.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    run = simulate_run(scenario, scenario.seed, 0)
    records = run.records
    return {
        "records": {"requests": records_hash(records.columns), "jobs": records_hash(records.jobs)},
        "summary": summary_numbers(run.summary),
    }


def _change(old: Number, new: Number) -> str:
    shown = f"{old!r} -> {new!r}"
    if isinstance(old, int | float) and isinstance(new, int | float) and old != 0:
        shown += f" ({new / old - 1:+.3g} relative)"
    return shown


def differences(stored: Fingerprint, current: Fingerprint) -> list[str]:
    """One line per difference: changed records, missing or new summary rows, moved summary columns."""
    lines = [
        f"records: {label} hash changed"
        for label, digest in current["records"].items()
        if stored["records"].get(label) != digest
    ]
    old_rows, new_rows = stored["summary"], current["summary"]
    lines += [f"summary row {key}: no longer produced" for key in old_rows if key not in new_rows]
    lines += [f"summary row {key}: new" for key in new_rows if key not in old_rows]
    for key in (k for k in new_rows if k in old_rows):
        old, new = old_rows[key], new_rows[key]
        for column in dict.fromkeys([*old, *new]):
            if column not in old or column not in new:
                lines.append(f"{key} {column}: {'new column' if column not in old else 'column gone'}")
            elif old[column] != new[column]:
                lines.append(f"{key} {column}: {_change(old[column], new[column])}")
    return lines


def main() -> None:
    STORE.write_text(json.dumps({name: fingerprint(name) for name in SCENARIOS}, indent=1, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
