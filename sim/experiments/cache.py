"""A resumable store of finished replications: ``results/<name>/cache/<key>.npz``.

A sweep of a thousand runs that is interrupted (Ctrl-C, a crash, a lost cluster) keeps every
run that finished: each is written as soon as it arrives, atomically (a temporary file in
the same folder, then ``os.replace``), so the store never holds half a result. Running the
same command again finds them and runs only the rest.

The key is a hash of everything that determines a run's numbers: the validated scenario of
its point (``model_dump`` as JSON, plus the bytes of any trace or empirical file it reads),
the seed, the replication index, the qsim version and a fingerprint of qsim's source code.
The fingerprint makes a cache safe across code changes during development (the version
alone would not change); two points that validate to the same scenario share entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from sim.about import __version__
from sim.experiments.replication import RunOutcome
from sim.experiments.storage import UnreadableEntry, read_outcome, write_outcome
from sim.model.schema import Scenario


@cache
def code_fingerprint() -> str:
    """A short hash of the source of every module of the ``sim`` package."""
    digest = hashlib.sha256()
    package = Path(__file__).parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _files(node: Any) -> list[str]:
    """Every ``file:`` value in a dumped scenario (trace arrivals, empirical distributions)."""
    if isinstance(node, dict):
        found = [str(node["file"])] if isinstance(node.get("file"), str) else []
        return found + [name for value in node.values() for name in _files(value)]
    if isinstance(node, list):
        return [name for value in node for name in _files(value)]
    return []


def scenario_digest(scenario: Scenario) -> str:
    """A hash of a validated scenario, including the contents of the data files it reads."""
    dumped = scenario.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(dumped, sort_keys=True, default=str).encode())
    base = scenario.source.parent if scenario.source is not None else Path(".")
    for name in _files(dumped):
        digest.update(name.encode())
        with contextlib.suppress(OSError):
            digest.update((base / name).read_bytes())
    return digest.hexdigest()


def run_key(digest: str, seed: int, replication: int) -> str:
    """The cache key of one replication of one point."""

    text = f"{digest}|seed={seed}|replication={replication}|qsim={__version__}|code={code_fingerprint()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


Note = Callable[[str], None]
"""Where the cache says, once, that it ignored entries it could not use (the command line: stderr)."""


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


class ResultCache:
    """Finished replications by key: in memory always, and on disk when given a folder.

    On disk each run is ``<key>.npz`` (see :mod:`sim.experiments.storage`: plain arrays and
    JSON, read without unpickling, so a planted file cannot run code). An entry that cannot be
    used -- unreadable, of another format, stored under another key's name, or an old
    ``<key>.pkl`` that is never opened -- counts as missing and is run again; ``note`` is told
    once per kind of problem, not once per file.
    """

    def __init__(self, folder: Path | None = None, *, fresh: bool = False, note: Note | None = None) -> None:
        self.folder = folder
        self.fresh = fresh
        """Ignore what is on disk (but still store new results, so a later run can resume)."""
        self.note = note or _warn
        self.ignored: dict[str, int] = {}
        """Entries not used, by reason (``old``: a ``.pkl`` of an earlier qsim; ``unreadable``)."""
        self._memory: dict[str, RunOutcome] = {}

    def _ignore(self, reason: str, message: str) -> None:
        if reason not in self.ignored:
            self.note(message)
        self.ignored[reason] = self.ignored.get(reason, 0) + 1

    def get(self, key: str) -> RunOutcome | None:
        if key in self._memory:
            return self._memory[key]
        if self.folder is None or self.fresh:
            return None
        path = self.folder / f"{key}.npz"
        if not path.exists():
            if (self.folder / f"{key}.pkl").exists():
                self._ignore("old", f"{self.folder}: cache entries of an older qsim (.pkl) are never opened "
                                    "(they could run code); those runs are computed again")
            return None
        try:
            outcome = read_outcome(path, key)
        except UnreadableEntry as error:
            self._ignore("unreadable", f"{self.folder}: ignoring cache entries that cannot be used "
                                       f"(first: {path.name}: {str(error)[:80]}); those runs are computed again")
            return None
        self._memory[key] = outcome
        return outcome

    def put(self, key: str, outcome: RunOutcome) -> None:
        """Keep ``outcome`` (on disk without its full run: records are large) and write it atomically."""
        self._memory[key] = outcome
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                write_outcome(stream, key, outcome)
            os.replace(temporary, self.folder / f"{key}.npz")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        if self.folder is None or not self.folder.is_dir():
            return len(self._memory)
        return len(list(self.folder.glob("*.npz")))
