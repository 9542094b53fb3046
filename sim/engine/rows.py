"""Where the job and request logs keep their rows: memoryviews over reserved anonymous memory.

A log column is indexed by job (or request) id from the start of a run to its end, so the hot
path writes ``column[job] = value`` with no offset arithmetic and no bounds to move. Each column
is a ``memoryview`` over an anonymous ``mmap`` that reserves address space for far more rows than
a run writes (:data:`RESERVED_ROWS`; ``MAP_NORESERVE``: no memory is committed). A page gets memory
when first written; :meth:`Store.release` hands the memory of rows folded into the streaming
statistics back to the system (``madvise(MADV_DONTNEED)``), so a streamed run's memory follows
the rows still needed, not the length of the run. A released row reads as 0.

Why memoryviews: their item get and set are C slots like ``array.array``'s, ~15 % faster in a
micro-benchmark, and the view never moves. If the system refuses the reservation (a strict
overcommit policy, a small address-space limit), a smaller one sized from the rows the run is
expected to write is tried, and last growable ``array.array`` columns, whose memory is never
released (the same results; memory that grows with the run).
"""

from __future__ import annotations

import math
import mmap
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

CHUNK = 65536
"""Rows made ready (and, once folded, released) at a time: a multiple of every page size."""
RESERVED_ROWS = 2**33
"""Rows of address space each column reserves: more than any run writes."""
SMALLEST_RESERVATION = 16 * CHUNK
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
"""Reserve address space without committing memory (Linux; the constant is missing before Python 3.13)."""

if TYPE_CHECKING:
    FloatColumn: TypeAlias = memoryview[float] | array[float]
    IntColumn: TypeAlias = memoryview[int] | array[int]
else:
    FloatColumn = IntColumn = Any


class _Mapped:
    """One column in a reserved mapping."""

    def __init__(self, code: str, rows: int) -> None:
        self.size = array(code).itemsize
        self.mapping = mmap.mmap(-1, rows * self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
        self.view: memoryview = memoryview(self.mapping).cast(code)  # type: ignore[call-overload]
        self.rows = rows
        self.released = 0
        """Bytes at the start handed back (whole pages)."""

    def release(self, rows: int) -> None:
        """Hand back the whole pages under row ``rows``."""
        end = rows * self.size // mmap.PAGESIZE * mmap.PAGESIZE
        if end > self.released:
            self.mapping.madvise(mmap.MADV_DONTNEED, self.released, end - self.released)
            self.released = end


class Store:
    """The columns of one log, all of the same length (``allocated`` rows made ready so far).

    ``fill`` is what a new row holds until written (NaN for a time that did not happen yet, +inf
    for no deadline, 0 otherwise).
    """

    def __init__(self, expected_rows: float = math.inf) -> None:
        self.allocated = 0
        self.released = 0
        """Rows below this have been handed back (a multiple of :data:`CHUNK`)."""
        self._columns: list[tuple[_Mapped | array[Any], float]] = []
        self._reserve = RESERVED_ROWS
        self._fallback = min(RESERVED_ROWS, _rounded(max(SMALLEST_RESERVATION, 4 * expected_rows)))
        self.mapped = True
        """False once a column had to fall back to ``array.array`` (rows are then never released)."""

    def column(self, code: str, fill: float = 0.0) -> Any:
        """A new column of ``array`` type code ``code`` (``d`` float, ``b`` int8, ``q`` int64)."""
        column: _Mapped | array[Any]
        try:
            column = self._mapped(code)
        except (OSError, OverflowError, ValueError):
            column = array(code)
            self.mapped = False
        self._columns.append((column, fill))
        if self.allocated:
            _ready(column, fill, 0, self.allocated)
        return column.view if isinstance(column, _Mapped) else column

    def _mapped(self, code: str) -> _Mapped:
        if not self.mapped:
            raise OSError("an earlier column is not mapped")
        try:
            return _Mapped(code, self._reserve)
        except (OSError, OverflowError, ValueError):
            if self._reserve == self._fallback:
                raise
            self._reserve = self._fallback  # the system refused the large reservation: a sized one
            return _Mapped(code, self._reserve)

    def grow(self) -> None:
        """Make the next :data:`CHUNK` rows ready."""
        first = self.allocated
        if first + CHUNK > self._reserve and any(isinstance(column, _Mapped) for column, _ in self._columns):
            raise MemoryError(f"the run wrote more than the {self._reserve:,} rows reserved for it")
        for column, fill in self._columns:
            _ready(column, fill, first, first + CHUNK)
        self.allocated = first + CHUNK

    def release(self, below: int) -> None:
        """Hand back the memory of the rows under ``below`` (they will not be read again), in whole chunks."""
        below -= below % CHUNK
        if below <= self.released:
            return
        for column, _ in self._columns:
            if isinstance(column, _Mapped):
                column.release(below)
        self.released = below

    def take(self, view: Any, count: int) -> np.ndarray:
        """A copy of a column's first ``count`` rows; the column is then unmapped (its view unusable)."""
        values = np.array(numpy_of(view, 0, count))
        for index, (column, _) in enumerate(self._columns):
            if (column.view if isinstance(column, _Mapped) else column) is view:
                del self._columns[index]
                _close(column)
                break
        return values

    def close(self) -> None:
        """Unmap every column (after :func:`numpy_of` copies are taken; the views become unusable)."""
        for column, _ in self._columns:
            _close(column)
        self._columns.clear()


def _close(column: _Mapped | array[Any]) -> None:
    if isinstance(column, array):
        del column[:]
        return
    try:
        column.view.release()
        column.mapping.close()
    except BufferError:  # a NumPy view of it is still alive somewhere: the collector unmaps it
        pass


def _rounded(rows: float) -> int:
    return int(math.ceil(min(rows, RESERVED_ROWS) / CHUNK) * CHUNK)


def _ready(column: _Mapped | array[Any], fill: float, first: int, last: int) -> None:
    """Rows ``first .. last - 1`` hold ``fill``: fresh (or released) mapped memory reads 0 already."""
    if isinstance(column, array):
        column.extend(array(column.typecode, [fill]) * (last - first))
    elif fill != 0:
        numpy_of(column.view, first, last)[:] = fill


def numpy_of(view: Any, first: int, last: int) -> np.ndarray:
    """Rows ``first .. last - 1`` of a column as a NumPy array sharing its memory (no copy)."""
    code = view.format if isinstance(view, memoryview) else view.typecode
    dtype = {"d": np.float64, "b": np.int8, "q": np.int64}[code]
    return np.frombuffer(view, dtype=dtype, count=last - first, offset=first * np.dtype(dtype).itemsize)


Folding = Callable[[], None]
"""Called when a log is about to make rows ready (at most once per :data:`CHUNK` rows)."""
