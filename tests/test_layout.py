"""Size limits of the code (the project's style): modules under 400 lines, functions under 80.

A long function or module is where a reader gets lost; the limits keep each piece small
enough to read at once. Functions are counted with their nested functions and docstrings,
from ``def`` to their last line.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

MODULE_LINES = 400
FUNCTION_LINES = 80

KNOWN_OVERSIZE: set[str] = set()
"""Modules allowed over the limits for now. Nothing in sim/engine may be listed here."""


def modules() -> list[Path]:
    return sorted((ROOT / "sim").rglob("*.py"))


def name_of(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def oversize(path: Path) -> list[str]:
    """What in ``path`` is over the limits, one line each."""
    text = path.read_text()
    found = []
    lines = len(text.splitlines())
    if lines > MODULE_LINES:
        found.append(f"{name_of(path)}: {lines} lines (limit {MODULE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > FUNCTION_LINES:
                found.append(f"{name_of(path)}:{node.lineno}: {node.name} is {length} lines (limit {FUNCTION_LINES})")
    return found


def test_modules_and_functions_are_small() -> None:
    found = [line for path in modules() if name_of(path) not in KNOWN_OVERSIZE for line in oversize(path)]
    assert not found, "\n".join(found)


def test_known_oversize_modules_are_still_oversize() -> None:
    # An entry that now complies must leave the set, so that it cannot grow back unnoticed.
    stale = sorted(name for name in KNOWN_OVERSIZE if not oversize(ROOT / name))
    assert not stale, f"within the limits now, remove from KNOWN_OVERSIZE: {stale}"
    assert not any(name.startswith("sim/engine/") for name in KNOWN_OVERSIZE)


def test_the_checker_sees_nested_functions_and_long_modules(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(FUNCTION_LINES - 1))
    probe = tmp_path / "probe.py"
    probe.write_text(f"def outer() -> None:\n    def inner() -> None:\n{body}\n")
    assert oversize(probe) == [f"probe.py:1: outer is {FUNCTION_LINES + 1} lines (limit {FUNCTION_LINES})"]
    probe.write_text(f"def outer() -> None:\n    def inner() -> None:\n{body}\n        pass\n")
    assert [line.split(": ")[1] for line in oversize(probe)] == ["outer is 82 lines (limit 80)",
                                                                 "inner is 81 lines (limit 80)"]
    probe.write_text("x = 1\n" * (MODULE_LINES + 1))
    assert oversize(probe) == [f"probe.py: {MODULE_LINES + 1} lines (limit {MODULE_LINES})"]
