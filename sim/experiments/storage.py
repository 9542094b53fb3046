"""A finished run on disk as a NumPy ``.npz`` archive that cannot run code when read.

A results folder is something users hand each other; its ``cache/`` must not be a way to
execute code on the next ``qsim run`` (unpickling a planted file does exactly that). An
``.npz`` archive read with ``allow_pickle=False`` holds only plain arrays: every numeric or
boolean column is stored as its own array, and what is not a plain array -- column names and
dtypes, categories, text columns, ``attrs``, the run's key and labels -- is one JSON document
stored as bytes. Reading refuses anything else (an object array, an unknown format, another
key), so the worst a planted file can do is be recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from sim.experiments.replication import RunOutcome

FORMAT = 1
"""Bumped whenever the layout changes: an entry of another format is recomputed."""


class UnreadableEntry(ValueError):
    """The file is not a cache entry of this format for this key."""


def _plain(value: Any) -> Any:
    """A JSON-able copy of a cell of an object column (NumPy scalars become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in the cache")


def _encode_frame(frame: pd.DataFrame, name: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Put ``frame``'s numeric columns into ``arrays`` and return the JSON description of the rest."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        raise TypeError(f"{name}: only frames with a default index are stored")
    columns = []
    for position, column in enumerate(frame.columns):
        series = frame[column]
        dtype = series.dtype
        entry: dict[str, Any] = {"name": column, "dtype": str(dtype)}
        if isinstance(dtype, pd.CategoricalDtype):
            entry.update(kind="category", categories=[_plain(c) for c in dtype.categories],
                         ordered=bool(dtype.ordered))
            arrays[f"{name}_{position}"] = np.asarray(series.cat.codes)
        elif pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
            entry.update(kind="values", values=[_plain(v) for v in series.tolist()])
        elif isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            entry["kind"] = "array"
            arrays[f"{name}_{position}"] = series.to_numpy()
        else:
            raise TypeError(f"{name}.{column}: cannot store dtype {dtype} in the cache")
        columns.append(entry)
    return {"rows": len(frame), "columns": columns, "attrs": {k: _plain(v) for k, v in frame.attrs.items()}}


def _decode_frame(meta: dict[str, Any], name: str, data: Any) -> pd.DataFrame:
    parts: dict[str, Any] = {}
    rows = int(meta["rows"])
    for position, entry in enumerate(meta["columns"]):
        kind = entry["kind"]
        if kind == "array":
            values = data[f"{name}_{position}"]
            if values.dtype.kind not in "biuf" or str(values.dtype) != entry["dtype"]:
                raise UnreadableEntry(f"{name}.{entry['name']}: unexpected dtype {values.dtype}")
            parts[entry["name"]] = pd.Series(values)
        elif kind == "category":
            categories = pd.CategoricalDtype(entry["categories"], ordered=entry["ordered"])
            parts[entry["name"]] = pd.Series(pd.Categorical.from_codes(data[f"{name}_{position}"], dtype=categories))
        elif kind == "values":
            parts[entry["name"]] = pd.Series(entry["values"], dtype=entry["dtype"])
        else:
            raise UnreadableEntry(f"{name}.{entry['name']}: unknown column kind {kind!r}")
    frame = pd.DataFrame(parts, index=pd.RangeIndex(rows))
    if len(frame.columns) != len(meta["columns"]) or any(len(s) != rows for s in parts.values()):
        raise UnreadableEntry(f"{name}: columns of different lengths or duplicate names")
    frame.attrs.update(meta["attrs"])
    return frame


def write_outcome(stream: IO[bytes], key: str, outcome: RunOutcome) -> None:
    """Write ``outcome`` (without its full run) as one ``.npz`` archive labelled with ``key``."""
    arrays: dict[str, np.ndarray] = {"latency_quantiles": np.asarray(outcome.latency_quantiles, dtype=np.float64)}
    meta = {
        "format": FORMAT, "key": key, "point": int(outcome.point), "replication": int(outcome.replication),
        "warmup": float(outcome.warmup), "code": outcome.code,
        "summary": _encode_frame(outcome.summary, "summary", arrays),
        "timeseries": _encode_frame(outcome.timeseries, "timeseries", arrays),
    }  # fmt: skip
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(stream, **arrays)  # type: ignore[arg-type]


def read_outcome(path: Path, key: str) -> RunOutcome:
    """Read an entry written by :func:`write_outcome`; :class:`UnreadableEntry` unless it is exactly that.

    ``allow_pickle=False``: an archive holding an object array raises instead of unpickling it.
    The stored key must be the one asked for: an entry copied under another entry's name is
    refused, not served as the wrong run.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files") or "meta" not in data.files:
                raise UnreadableEntry("not a qsim cache archive")
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise UnreadableEntry(f"format {meta.get('format')!r}, expected {FORMAT}")
            if meta.get("key") != key:
                raise UnreadableEntry("stored under another key's name")
            quantiles = np.asarray(data["latency_quantiles"])
            if quantiles.dtype != np.float64:
                raise UnreadableEntry("latency quantiles are not float64")
            return RunOutcome(
                point=int(meta["point"]), replication=int(meta["replication"]),
                summary=_decode_frame(meta["summary"], "summary", data),
                timeseries=_decode_frame(meta["timeseries"], "timeseries", data),
                latency_quantiles=quantiles, warmup=float(meta["warmup"]), code=str(meta["code"]),
            )  # fmt: skip
    except UnreadableEntry:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError, json.JSONDecodeError) as error:
        raise UnreadableEntry(f"{type(error).__name__}: {error}") from None
    except Exception as error:  # a corrupt zip raises whatever zipfile meets: still only a miss
        raise UnreadableEntry(f"{type(error).__name__}: {error}") from None


__all__ = ["FORMAT", "UnreadableEntry", "read_outcome", "write_outcome"]
