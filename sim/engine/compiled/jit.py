"""How the compiled engine's functions are compiled, and where Numba keeps the machine code.

- ``_nrt=False``: the kernel allocates nothing and only borrows the driver's arrays, so Numba's
  reference counting is pure cost -- with it, every array taken out of the state tuple costs
  two atomic operations, which made the loop ~15x slower. This is a Numba option that is not
  part of its documented API; pyproject.toml pins Numba's versions for that reason, and
  tests/test_compiled.py fails loudly if it stops working.
- ``cache=True``: compiled once per machine. Numba's cache is keyed on each function's own
  file, not on the files it inlines from, so the cache lives in a folder named after a hash of
  this package's sources and of every qsim module they import (the tally layout's constants are
  frozen into the machine code): any change to either compiles afresh.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numba
from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def compiled_sources() -> list[Path]:
    """This package's files and the qsim modules they import from: what the machine code depends on."""
    package = Path(__file__).parent
    root = package.parents[2]
    sources = set(package.glob("*.py"))
    for path in list(sources):
        for module in re.findall(r"^from (sim(?:\.\w+)+) import", path.read_text(), flags=re.MULTILINE):
            file = root.joinpath(*module.split(".")).with_suffix(".py")
            if file.exists():
                sources.add(file)
    return sorted(sources)


def _cache_dir() -> str:
    digest = hashlib.sha256()
    for path in compiled_sources():
        digest.update(str(path.relative_to(Path(__file__).parents[3])).encode())
        digest.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "qsim" / "numba" / digest.hexdigest()[:16]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".writable"
        probe.touch()
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"qsim-numba-{digest.hexdigest()[:16]}"
        folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()  # type: ignore[attr-defined]  # set at runtime by Numba


_OPTIONS: dict[str, Any] = {"cache": True, "_nrt": False}

COMPILING_NOTE = ("qsim: note: compiling the compiled engine (once per machine and qsim version, about a "
                  "minute); later runs load it at once")
"""Said on stderr when the first call of the engine in a process takes long: Numba is compiling."""


def compiling_note(first: Any, after: float = 3.0) -> threading.Timer | None:
    """Start a timer that says :data:`COMPILING_NOTE` unless cancelled within ``after`` seconds.

    Only when ``first`` (a Numba dispatcher) has not run in this process yet: loading the cached
    machine code takes well under a second, so a first call that lasts longer is compiling. The
    caller cancels the timer once the call returns.
    """
    if first.signatures:
        return None
    timer = threading.Timer(after, lambda: print(COMPILING_NOTE, file=sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    return timer


def entry(function: F) -> F:
    """A function the driver calls from Python."""
    compiled: F = njit(**_OPTIONS)(function)
    return compiled


def step(function: F) -> F:
    """A small piece of the loop, inlined into its caller by Numba (no call: a call passes every
    array of the state by value, which costs more than the piece itself)."""
    compiled: F = njit(inline="always", **_OPTIONS)(function)
    return compiled


def apart(function: F) -> F:
    """A larger piece, compiled once and called: inlining it at every call site made the first
    compile take minutes. Such pieces take only the arrays they need (small calls)."""
    compiled: F = njit(**_OPTIONS)(function)
    return compiled
