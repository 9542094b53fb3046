"""New features switched off leave results bit-for-bit identical (see tests/regression.py)."""

from __future__ import annotations

import copy
import json

import pytest

from tests.regression import SCENARIOS, STORE, differences, fingerprint


@pytest.mark.parametrize("name", SCENARIOS)
def test_bundled_scenarios_reproduce_their_stored_fingerprints(name: str) -> None:
    changes = differences(json.loads(STORE.read_text())[name], fingerprint(name))
    assert not changes, (
        f"{name}: results changed (if intended, run python -m tests.regression and say so in the commit):\n  "
        + "\n  ".join(changes)
    )


def test_a_mismatch_names_the_rows_and_columns_that_moved_and_the_records_that_changed() -> None:
    stored = json.loads(STORE.read_text())["pipeline"]
    current = copy.deepcopy(stored)
    current["records"]["jobs"] = "0" * 64
    current["summary"]["all/enrich"]["wait_mean"] = stored["summary"]["all/enrich"]["wait_mean"] * 1.5
    current["summary"]["all/all"]["cost_usd"] = 0.25
    del current["summary"]["all/store"]
    assert differences(stored, current) == [
        "records: jobs hash changed",
        "summary row all/store: no longer produced",
        "all/all cost_usd: None -> 0.25",
        f"all/enrich wait_mean: {stored['summary']['all/enrich']['wait_mean']!r} -> "
        f"{current['summary']['all/enrich']['wait_mean']!r} (+0.5 relative)",
    ]
    assert differences(stored, copy.deepcopy(stored)) == []
