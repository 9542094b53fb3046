"""New features switched off leave results bit-for-bit identical (see tests/regression.py)."""

from __future__ import annotations

import json

import pytest

from tests.regression import SCENARIOS, STORE, fingerprint


@pytest.mark.parametrize("name", SCENARIOS)
def test_bundled_scenarios_reproduce_their_stored_fingerprints(name: str) -> None:
    stored = json.loads(STORE.read_text())
    assert fingerprint(name) == stored[name], "results changed; if intended, run python -m tests.regression"
