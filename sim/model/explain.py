"""Pydantic's validation errors, explained in one line: file, field, the value as written, the fix.

Pydantic reports where a value failed inside its own model (with union tags the user never
wrote) and in its own words. This module walks the error's location through the data as
the user wrote it, shows that value, and says in plain words what is allowed. It serves the
scenario (:mod:`sim.model.scenario`) and the experiment blocks (``sweep``, ``precision``,
``plan``), whose fields may be shown under the block's name (``plan.min``) or as the
command-line flag that supplied them (``--min``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sim.model.broker_specs import BROKER_KINDS
from sim.model.errors import MISSING, UNSHOWN, FieldError, describe, one_of
from sim.model.fault_specs import FAULT_KINDS
from sim.model.specs import BLOCKS, DISTRIBUTIONS, NAME_PATTERN, PROCESSES

#: What a required key holds, for "missing" messages, by the key's name.
_NEEDS = {
    "name": "a name of lowercase letters, digits, '-' and '_' (it names the results folder)",
    "producers": "a list of producers, each with arrivals (e.g. {process: poisson, rate: 900/s, stop: 60s})",
    "arrivals": "e.g. {process: poisson, rate: 900/s, stop: 60s}",
    "consumers": "e.g. {concurrency: 4, service: {dist: exponential, mean: 500ms}}",
    "concurrency": "how many requests are in service at once, an integer >= 1",
    "rate": "events per time, e.g. 900/s",
    "rates": "a list of [from time, rate] pairs, e.g. [[0s, 100/s], [60s, 900/s]]",
    "count": "how many requests, an integer >= 1",
    "file": "a CSV file with one number (seconds) per row, relative to the scenario file",
    "mean": "a duration, e.g. 500ms",
    "value": "a duration, e.g. 500ms",
    "low": "a duration, e.g. 100ms",
    "high": "a duration, e.g. 900ms",
    "cv": "the coefficient of variation (standard deviation / mean), e.g. 0.5",
    "metric": "a summary column, e.g. latency_p99",
    "relative": "the half-width wanted, as a share of the mean, e.g. 0.05",
}

#: The allowed tags of each discriminated union, by its discriminator key.
_KINDS = {"process": PROCESSES, "dist": DISTRIBUTIONS}

_NAME_HELP = "use lowercase letters, digits, '-' and '_' only (it names the results folder)"


def _child(node: Any, step: str | int) -> Any:
    """``node[step]`` if the raw data has it, else :data:`MISSING`."""
    if isinstance(node, dict) and step in node:
        return node[step]
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return MISSING


def _raw_at(data: Any, loc: Iterable[str | int], extra: Iterable[str | int] = ()) -> tuple[list[str | int], Any]:
    """Follow ``loc`` then ``extra`` through the raw data; return the path shown and the value there.

    Pydantic puts union tags (``poisson``, ``fixed``) in error locations; the user wrote
    neither, so a step of ``loc`` that does not walk through their data is left out. The
    steps of ``extra`` are real field names (an absent key, a field a rule points at) and
    are always shown. The value is :data:`MISSING` when the path leaves the data.
    """
    path: list[str | int] = []
    node = data
    for step in loc:
        child = _child(node, step)
        if child is not MISSING:
            node = child
            path.append(step)
    for step in extra:
        path.append(step)
        node = _child(node, step)
    return path, node


def _allowed(first: ErrorDetails, value: Any) -> str:
    """What is allowed, for a pydantic error that is not one of ours, in plain words."""
    kind = first["type"]
    ctx = first.get("ctx") or {}
    if kind == "literal_error":
        return one_of(value, re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("string_type", "string_sub_type"):
        return "must be text"
    if kind == "string_pattern_mismatch":
        return _NAME_HELP if ctx.get("pattern") == NAME_PATTERN else f"must match the pattern {ctx.get('pattern')}"
    if kind in ("too_short", "too_long", "tuple_type") and (ctx.get("field_type") == "Tuple" or kind == "tuple_type"):
        return "must be a pair [from time, rate], e.g. [60s, 900/s]"
    if kind == "too_short":
        count = ctx.get("min_length")
        return f"give at least {count} item{'s' if count != 1 else ''}"
    if kind == "list_type":
        return "must be a list: [a, b] or one '- item' per line"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        spec = BLOCKS.get(str(ctx.get("class_name")))
        keys = f" with keys {', '.join(spec.model_fields)}" if spec is not None else ""
        return f"must be a mapping{keys} (key: value lines), not a single value"
    message = first["msg"]
    for start in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(start)
    return message.replace("Input should be", "must be")


def _field(path: list[str | int], block: str | None, label: Callable[[str], str] | None) -> str:
    """The field as the user knows it: ``queue.capacity``, ``sweep.queue.capacity``, ``plan.min``, ``--min``."""
    if not path:
        return block or "(top level)"
    first = label(str(path[0])) if label is not None else f"{block}.{path[0]}" if block else str(path[0])
    if first.startswith("--"):
        return first  # a flag stands for its whole value
    return ".".join([first, *(str(step) for step in path[1:])])


def format_validation_error(
    error: ValidationError,
    data: Any,
    where: str,
    block: str | None = None,
    label: Callable[[str], str] | None = None,
) -> str:
    """One line for the first error: ``where: field.path: got VALUE; what is allowed``.

    ``data`` is what was validated, as written. ``block`` names it when it is part of a file
    (``sweep``: fields show as ``sweep.<key>``); ``label`` names a top-level key instead
    (``--min`` for a value that came from the command line).
    """
    first = error.errors()[0]
    loc: list[str | int] = list(first["loc"])
    ctx = first.get("ctx") or {}
    cause = ctx.get("error")
    kind = first["type"]
    extra: list[str | int] = []
    if isinstance(cause, FieldError):
        extra = list(cause.path)
    elif kind == "unknown_key":
        extra = [ctx["key"]]
    elif kind == "missing":
        extra = loc[-1:]
        loc = loc[:-1]
    path, value = _raw_at(data, loc, extra)
    field = _field(path, block, label)
    if kind == "unknown_key":
        return f"{where}: {field}: {ctx['message']}"
    if kind == "missing":
        needs = _NEEDS.get(str(path[-1]), "")
        return f"{where}: {field}: missing; this key is required{': ' + needs if needs else ''}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "")).strip("'")
        allowed = _KINDS.get(key) or re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        if kind == "union_tag_not_found":
            if not allowed and key == "kind":  # a broker or a fault (both say what they are with kind:)
                allowed = list(FAULT_KINDS if "faults" in path else BROKER_KINDS)
            return f"{where}: {field}.{key}: missing; say which {key} this is, one of: {', '.join(allowed)}"
        return f"{where}: {field}.{key}: got {describe(ctx.get('tag'))}; {one_of(ctx.get('tag'), allowed)}"
    if isinstance(cause, FieldError):
        message = str(cause)
        if value is MISSING or cause.value is UNSHOWN:
            value = cause.value
    else:
        message = _allowed(first, value)
        if value is MISSING:
            value = first.get("input", MISSING)
    if value is UNSHOWN:
        return f"{where}: {field}: {message}"
    if value is MISSING:
        return f"{where}: {field}: missing; {message}"
    return f"{where}: {field}: got {describe(value)}; {message}"
