"""Fuzzing the bundled scenarios: whatever a mutant holds, qsim answers with a run or one error line.

Hypothesis picks a bundled scenario and drives the mutations of ``tests/fuzzing.py`` (extreme,
subnormal, NaN and infinite numbers, wrong types, deleted, unknown and duplicated keys, device
files as data files, experiment blocks of the wrong shape); each mutant is checked with
``qsim check`` and, when valid and small (a short ``until``, at most a few thousand requests),
run with ``qsim run --no-figures``. Every command must exit 0 or 2, with exactly one
``qsim: error:`` line on 2 and never a traceback. The long campaign (``scripts/fuzz.py``) runs
the same mutations by the ten thousand.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.experiments import budget
from tests import fuzzing

BASES = fuzzing.bases()


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(BASES)), rng=st.randoms(use_true_random=False), changes=st.integers(1, 3))
def test_mutated_scenarios_end_in_a_run_or_one_error_line(name: str, rng: random.Random, changes: int) -> None:
    mutant, touched = fuzzing.mutate(BASES[name], rng, changes)
    text = fuzzing.to_yaml(fuzzing.bounded(mutant, touched), rng)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text)
        found = fuzzing.exercise(path, Path(folder) / "out", max_requests=25_000)
    assert not found, f"{found[0][1]} on\n{text}\n{found[0][0]}"


@pytest.fixture(autouse=True)
def _small_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with 300 MB free: mutants that ask for millions of requests take the refusal path."""
    monkeypatch.setattr(budget, "available_memory", lambda: 300 * 2**20)


def test_the_rule_catches_what_it_should() -> None:
    # The checker itself: a traceback, two lines, or a stray exit code are findings.
    ok = fuzzing.Outcome("check", 0, "x: ok\n", "", None)
    assert fuzzing.breaks_the_rule(ok) is None
    assert fuzzing.breaks_the_rule(fuzzing.Outcome("check", 2, "", "qsim: error: x: y\n", None)) is None
    assert fuzzing.breaks_the_rule(fuzzing.Outcome("check", 2, "", "qsim: error: a\nqsim: error: b\n", None))
    assert fuzzing.breaks_the_rule(fuzzing.Outcome("run", 2, "", "Traceback (most recent call last):\n", None))
    assert fuzzing.breaks_the_rule(fuzzing.Outcome("run", 1, "", "", None))
    assert fuzzing.breaks_the_rule(fuzzing.Outcome("run", None, "", "", "Traceback ...\nMemoryError\n"))
