"""Fingerprints of runs, to hold the engine to identical numbers across refactorings.

``python -m tests.regression`` rewrites ``tests/data/regression.json`` from the current code;
do that only when a change is meant to alter results, and say so in the commit message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

import sim
from sim.engine.simulation import replication_seeds, simulate

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "tests" / "data" / "regression.json"
SCENARIOS = (
    "burst-2k-vs-20k", "fifo-vs-lifo-burst", "tail-drop-vs-drop-oldest", "encore-priority", "encore-red",
    "codel-vs-tail-drop", "adaptive-lifo", "pubsub-fanout", "pipeline",
)  # fmt: skip
FIELDS = ("producer", "arrival", "deadline", "service", "start", "finish", "outcome", "reason", "stage", "request")


def fingerprint(name: str) -> dict[str, str]:
    """SHA-256 of every request and job column of replication 0 of a bundled scenario."""
    scenario = sim.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    records = simulate(scenario, replication_seeds(scenario.seed, 0))
    prints = {}
    for label, columns in (("requests", records.columns), ("jobs", records.jobs)):
        digest = hashlib.sha256()
        for field in FIELDS:
            digest.update(np.ascontiguousarray(getattr(columns, field)).tobytes())
        prints[label] = digest.hexdigest()
    return prints


def main() -> None:
    STORE.write_text(json.dumps({name: fingerprint(name) for name in SCENARIOS}, indent=2) + "\n")


if __name__ == "__main__":
    main()
