"""Mutants of the bundled scenarios, and the rule every command must keep on them.

Shared by the property test (``tests/test_fuzz.py``, Hypothesis drives the choices) and the
long campaign (``scripts/fuzz.py``, a seeded ``random.Random``): both hand a ``random.Random``
to :func:`mutate`, which changes a scenario's raw data the way a careless or hostile user
would (huge, tiny, negative, NaN, infinite and subnormal numbers, wrong types, deleted,
unknown and duplicated keys, device files as data files), then :func:`exercise` runs
``qsim check`` and, when that passes and the work is small, a short ``qsim run``.

The rule (:func:`breaks_the_rule`): exit code 0 or 2; on 2, exactly one line on stderr that
starts ``qsim: error:``; never a traceback; nothing but ``ScenarioError``-style exits.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import random
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.cli import main
from sim.model.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def bases() -> dict[str, Any]:
    """Every bundled scenario's raw data (read as qsim reads it: ``on:`` is a key, not ``true``)."""
    return {path.name: load_yaml(path.read_text()) for path in SCENARIOS}

NUMBERS: list[Any] = [
    0, 1, -1, 2, 7, 2**31, 2**63, 10**10, 10**30, 1e308, -1e308, 5e-324, 1e-300, 1e-9, 0.5, 0.999, 1.5,
    1e154, 27.0, 26.7, 1e6, math.nan, math.inf, -math.inf, -0.0, 99.99, 100,
]  # fmt: skip
STRINGS: list[Any] = [
    "", "x", "5e-324s", "1e308s", "1e308/s", "5e-324/s", "-5/s", "0/s", "1e400", "nan", "inf", ".inf", "-1s",
    "unbounded", "fifo", "lifo", "priority", "/dev/zero", "/dev/null", "/", "no-such-file.csv", "0s", "1us",
    "1000000000/s", "1/1e-300s", "10000000000", "2147483648", "9" * 400, "a" * 300, "{", "${x}", "é",
    "drop-oldest", "skip", "auto", "exponential", "lognormal", "burst", "trace", "empirical", "red", "codel",
]  # fmt: skip
WORDS = ["unbounded", "fifo", "lifo", "priority", "adaptive-lifo", "drop-oldest", "reject", "skip", "serve", "auto",
         "exponential", "lognormal", "gamma", "constant", "uniform", "burst", "poisson", "piecewise", "trace",
         "empirical", "red", "codel", "proportional", "fail-at-scale", "timeout", "rejected", "failed", "full", "none"]
OTHERS: list[Any] = [
    None, True, False, [], {}, [1, 2], [[0, "1/s"]], {"x": 1}, [None], {"dist": "lognormal", "mean": "1s", "sigma": 30},
    {"dist": "lognormal", "mean": "1s", "cv": 1e200}, {"dist": "gamma", "mean": "1s", "cv": 1e-200},
    {"dist": "uniform", "low": "0s", "high": "1e308s"}, {"dist": "empirical", "file": "/dev/zero"},
    {"process": "trace", "file": "/dev/zero"}, {"process": "burst", "count": 2147483648},
    {"process": "burst", "count": 10000000000}, {"process": "poisson", "rate": "1e12/s"},
    {"process": "piecewise", "rates": [[0, "1e300/s"]]}, {"policy": "codel", "target": "5e-324s"},
]  # fmt: skip
KEYS = ["x", "sweep", "precision", "plan", "until", "count", "sigma", "cv", "bucket", "requests", "retry", "swep",
        "capasity", "0", "", "stop", "stages", "then", "delivery", "scaling"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the data, containers included (the root is ``()``)."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _gentle(rng: random.Random, old: Any) -> Any:
    """A plausible replacement (often still valid): a number scaled, a unit swapped, a choice changed."""
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return max(0, int(old * rng.choice([0, 0.5, 2, 3, 10])) + rng.choice([0, 1]))
    if isinstance(old, float):
        return old * rng.choice([0.0, 0.1, 0.5, 2.0, 10.0])
    if isinstance(old, str):
        head = old.rstrip("abcdefghijklmnopqrstuvwxyz/")
        try:
            number = float(head)
        except ValueError:
            return rng.choice(WORDS)  # another word: a discipline, a dist, a policy
        return f"{number * rng.choice([0.01, 0.5, 2, 100]):g}{old[len(head):]}"
    return copy.deepcopy(old)


def _hostile(rng: random.Random, old: Any) -> Any:
    """A hostile constant, or the old number scaled to an extreme."""
    if isinstance(old, int | float) and not isinstance(old, bool) and rng.random() < 0.3:
        return old * rng.choice([1e6, 1e-6, -1, 1e300, 2**31, 0])
    if isinstance(old, str) and rng.random() < 0.2:
        head = old.rstrip("abcdefghijklmnopqrstuvwxyz/")
        return rng.choice(["1e308", "5e-324", "-1", "0", "1e-30", "nan", "9" * 40]) + old[len(head):]
    return copy.deepcopy(rng.choice(rng.choice([NUMBERS, STRINGS, OTHERS])))


def mutate(data: dict[str, Any], rng: random.Random, changes: int = 2) -> tuple[dict[str, Any], set[str]]:
    """A mutant of ``data`` (a copy) and the top-level keys it touched."""
    data = copy.deepcopy(data)
    touched: set[str] = set()
    for _ in range(changes):
        path = rng.choice(_paths(data))
        kind = rng.random()
        if path:
            touched.add(str(path[0]))
        if not path or kind < 0.1:  # add an unknown (or experiment) key to a mapping
            target = _get(data, path)
            if isinstance(target, dict):
                key = rng.choice(KEYS)
                target[key] = copy.deepcopy(rng.choice(NUMBERS + STRINGS + OTHERS))
                touched.add(key if not path else str(path[0]))
            continue
        parent = _get(data, path[:-1])
        if kind < 0.2 and isinstance(parent, dict):  # delete a key
            del parent[path[-1]]
        elif kind < 0.6:
            parent[path[-1]] = _gentle(rng, parent[path[-1]])
        else:
            parent[path[-1]] = _hostile(rng, parent[path[-1]])
    if rng.random() < 0.05:
        key = rng.choice(["sweep", "precision", "plan", "until"])
        data[key] = copy.deepcopy(rng.choice(NUMBERS + STRINGS + OTHERS))
        touched.add(key)
    return data, touched


def bounded(data: dict[str, Any], touched: set[str]) -> dict[str, Any]:
    """Keep runs small unless the mutant is about these keys: a short ``until``, no warm-up, two replications."""
    if "until" not in touched:
        data["until"] = "2s"
    if "warmup" not in touched:
        data.pop("warmup", None)
    if "replications" not in touched and isinstance(data.get("replications"), int):
        data["replications"] = min(2, data["replications"])
    sweep = data.get("sweep")
    if "sweep" not in touched and isinstance(sweep, dict) and sweep:
        data["sweep"] = {key: values[:2] for key, values in list(sweep.items())[:1]}
    return data


def to_yaml(data: Any, rng: random.Random) -> str:
    """The mutant as YAML text; sometimes with a key written twice (a duplicate key)."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000)
    lines = text.splitlines()
    if lines and rng.random() < 0.05:
        top = [line for line in lines if line and not line.startswith((" ", "-"))]
        if top:
            lines.append(rng.choice(top))
    return "\n".join(lines) + "\n"


@dataclass
class Outcome:
    command: str
    code: int | None
    stdout: str
    stderr: str
    error: str | None
    """The traceback of an exception that escaped ``main``, if any."""


def call(args: list[str]) -> Outcome:
    """``qsim args`` in this process, with stdout and stderr captured and nothing allowed to escape."""
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except BaseException as caught:
            if isinstance(caught, KeyboardInterrupt):
                raise
            error = "".join(traceback.format_exception(caught))
    return Outcome(" ".join(args[:1]), code, out.getvalue(), err.getvalue(), error)


def breaks_the_rule(outcome: Outcome) -> str | None:
    """What is wrong with a command's ending, or None when it ended as qsim promises."""
    if outcome.error is not None:
        return f"exception escaped: {outcome.error.strip().splitlines()[-1]}"
    if outcome.code not in (0, 2):
        return f"exit code {outcome.code}"
    if "Traceback" in outcome.stderr or "Warning" in outcome.stderr:
        return "traceback or warning on stderr"
    if outcome.code == 2:
        lines = outcome.stderr.splitlines()
        errors = [line for line in lines if line.startswith("qsim: error:")]
        if len(errors) != 1 or not lines[-1].startswith("qsim: error:"):
            return f"not one error line: {outcome.stderr!r}"
    return None


def exercise(path: Path, out: Path, run: bool = True, max_requests: float = 50_000,
             tally: dict[str, int] | None = None) -> list[tuple[Outcome, str]]:
    """``qsim check`` the file and, when it is valid and small, a short ``qsim run``; the broken rules.

    ``tally`` counts what happened (``check 0``, ``check 2``, ``run 0``, ``run 2``, ``too big to run``).
    """
    tally = {} if tally is None else tally
    found = []
    outcomes = [call(["check", str(path)])]
    if run and outcomes[0].code == 0:
        if _small(outcomes[0].stdout, max_requests):
            outcomes.append(call(["run", str(path), "--no-figures", "--out", str(out), "--workers", "1"]))
        else:
            tally["too big to run"] = tally.get("too big to run", 0) + 1
    for outcome in outcomes:
        key = f"{outcome.command} {outcome.code}"
        tally[key] = tally.get(key, 0) + 1
        problem = breaks_the_rule(outcome)
        if problem:
            found.append((outcome, problem))
    return found


def _small(ok_line: str, max_requests: float) -> bool:
    """Whether ``qsim check``'s estimate says the run is small enough for a quick test."""
    import re

    match = re.search(r"~([\d,]+) requests", ok_line)
    runs = re.search(r"sweep of (\d+) points", ok_line)
    if match is None:
        return False
    total = float(match.group(1).replace(",", "")) * (int(runs.group(1)) if runs else 1)
    return total <= max_requests
