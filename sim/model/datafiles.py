"""Reading files a scenario names (traces, measured durations) and scenario files, defensively.

A scenario may come from someone else, and so may the files it points at: a path to
``/dev/zero`` would fill the memory, a FIFO would block forever, a huge file would take
minutes before failing. So a data file must be a regular file (checked with ``stat`` before
it is opened, and again on the open descriptor), is opened non-blocking, and is read up to
a cap; an error quotes at most a short prefix of the row at fault, never a whole line of
someone else's file.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sim.model.errors import FieldError, prefix

MAX_DATA_FILE_BYTES = 256 * 2**20
"""A trace or empirical file larger than this (256 MiB) is refused before it is read."""
MAX_DATA_ROWS = 10_000_000
"""Rows read from one data file at most (each value is kept in memory for the whole run)."""
MAX_SCENARIO_BYTES = 16 * 2**20
"""A scenario file larger than this (16 MiB) is refused: no scenario needs that much YAML."""

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class Unreadable(Exception):
    """Why a file cannot be read, in a few words (``it is a FIFO``, ``No such file or directory``)."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size:,} bytes"


def read_capped(path: Path, limit: int, pipes: bool = False) -> bytes:
    """The bytes of ``path``, refusing anything but a regular file (and, if ``pipes``, a pipe)
    and anything above ``limit`` bytes; raise :class:`Unreadable` saying why."""
    try:
        before = os.stat(path)
    except OSError as error:
        raise Unreadable(error.strerror or type(error).__name__) from None
    allowed = stat.S_ISREG(before.st_mode) or (pipes and stat.S_ISFIFO(before.st_mode))
    if not allowed:
        raise Unreadable(f"it is {_kind(before.st_mode)}, not a regular file")
    if before.st_size > limit:
        raise Unreadable(f"it holds {_size(before.st_size)}, more than the {_size(limit)} qsim reads")
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (0 if pipes else getattr(os, "O_NONBLOCK", 0))
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise Unreadable(error.strerror or type(error).__name__) from None
    try:
        mode = os.fstat(descriptor).st_mode  # the file opened, not the one stat saw before
        if not (stat.S_ISREG(mode) or (pipes and stat.S_ISFIFO(mode))):
            raise Unreadable(f"it is {_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise Unreadable(f"it holds more than the {_size(limit)} qsim reads")
        return b"".join(chunks)
    except OSError as error:
        raise Unreadable(error.strerror or type(error).__name__) from None
    finally:
        os.close(descriptor)


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time (a list of every line of a 256 MiB file would not fit)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end]
        start = end + 1


def read_numbers(base_dir: str | Path, file: str, what: str) -> tuple[float, ...]:
    """One number per row (first column of a CSV; a header row is allowed) from ``file``, relative
    to ``base_dir``; every error is a :class:`FieldError` at ``file``."""
    path = Path(base_dir) / file
    fix = f"give a CSV file with one {what} in seconds per row, with a path relative to the scenario file"
    try:
        data = read_capped(path, MAX_DATA_FILE_BYTES)
    except Unreadable as reason:
        raise FieldError(f"cannot read {str(path)!r} ({reason}); {fix}", ("file",), file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError(f"{str(path)!r} is not a text file (not UTF-8); {fix}", ("file",), file) from None
    values: list[float] = []
    for number, line in enumerate(_lines(text), start=1):
        cell = line.split(",", 1)[0].strip()
        if not cell:
            continue
        try:
            value = float(cell)
        except ValueError:
            if number == 1 and not values:
                continue  # a header row
            raise FieldError(f"row {number} of {str(path)!r} starts {prefix(cell)}, not a number; "
                             f"give one {what} in seconds per row", ("file",), file) from None
        if not math.isfinite(value) or value < 0:
            raise FieldError(f"row {number} of {str(path)!r} is {prefix(cell)}; every {what} must be a finite "
                             "number >= 0", ("file",), file)
        if len(values) == MAX_DATA_ROWS:
            raise FieldError(f"{str(path)!r} has more than {MAX_DATA_ROWS:,} rows, the most qsim reads; "
                             "use a sample of it", ("file",), file)
        values.append(value)
    if not values:
        raise FieldError(f"{str(path)!r} holds no {what}s; give one number (seconds) per row", ("file",), file)
    return tuple(values)
