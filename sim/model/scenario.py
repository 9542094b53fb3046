"""Reading scenario files: YAML in, a validated :class:`Scenario` out, or one clear line of error.

The friendly layer over :mod:`sim.model.schema`: it reads YAML (refusing duplicate keys, which
``yaml.safe_load`` silently merges), applies ``--set key.path=value`` overrides to the raw
data before validation, and turns pydantic's errors into a single line naming the file,
the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sim.model.broker_specs import BROKER_KINDS
from sim.model.fault_specs import FAULT_KINDS
from sim.model.schema import (
    DISTRIBUTIONS,
    MISSING,
    NAME_PATTERN,
    PROCESSES,
    ConsumersSpec,
    FieldError,
    ProducerSpec,
    QueueSpec,
    ReportSpec,
    Scenario,
)


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message is one line meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(re.sub(r"\s*\n\s*", " ", message).strip())


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping (``yaml.safe_load`` would silently keep the last)."""


def refuse_unknown_keys(spec: dict[Any, Any], known: Sequence[str], where: str, block: str) -> None:
    """One-line error for a key of an experiment block (``plan``, ``precision``) that is not in ``known``.

    The same rule and wording as the schema's own blocks (:class:`sim.model.specs.Strict`), for the
    blocks validated outside pydantic.
    """
    for key in spec:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ScenarioError(f"{where}: {block}.{key}: unknown key; {hint}allowed here: {', '.join(known)}")


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and reads booleans the YAML 1.2 way.

    YAML 1.1 reads ``on``, ``off``, ``yes`` and ``no`` as booleans, so ``retry: {on: [timeout]}``
    would arrive as ``{True: [...]}``. Only ``true`` and ``false`` are booleans here.
    """


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping below says so
            continue
        if first is not None:
            problem = f"key {key!r} appears twice (first on line {first.line + 1}); keep only one"
            raise _DuplicateKeyError(None, None, problem, key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, raising :class:`ScenarioError` with the line and column of a mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ScenarioError(f"{path}: cannot read the scenario file ({reason}); check the path") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file (not UTF-8); give a YAML scenario file") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        if isinstance(error, _DuplicateKeyError):
            raise ScenarioError(f"{path}: {where}{problem}") from None
        raise ScenarioError(f"{path}: {where}malformed YAML: {problem}; fix the syntax") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.path=value`` into the path and the YAML value (``800/s`` stays a string, ``5`` is an int)."""
    path, equals, value = text.partition("=")
    path = path.strip()
    if not equals or not path or "" in path.split("."):
        raise ScenarioError(f"--set {text!r}: write key.path=value, e.g. producers.0.arrivals.rate=800/s")
    try:
        parsed = yaml.load(value, Loader=_StrictLoader) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return path, parsed


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], where: str = "scenario") -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted path set (list items by index, missing maps created).

    ``data`` itself is left unchanged. A path through a list needs an index that exists; a
    path through a missing (or empty) key creates the mapping on the way.
    """
    result = copy.deepcopy(data)
    for path, value in overrides.items():
        keys = path.split(".")
        node: Any = result
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            parent = ".".join(keys[:depth]) or "(top level)"
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    allowed = (
                        f"use an index from 0 to {len(node) - 1}" if node else "it is empty; set the whole list instead"
                    )
                    raise ScenarioError(
                        f"{where}: --set {path}: got {key!r}, but {parent} is a list of {len(node)}; {allowed}"
                    )
                index = int(key)
                if last:
                    node[index] = value
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[key] = value
                else:
                    if node.get(key) is None:  # missing, or written as an empty `key:`
                        node[key] = {}
                    node = node[key]
            else:
                raise ScenarioError(
                    f"{where}: --set {path}: {parent} is {_describe(node)}, a single value, not a mapping or list; "
                    f"set {parent} itself"
                )
    return result


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


def _describe(value: Any) -> str:
    """A value as the user wrote it in YAML, on one line and at most 80 characters."""
    if value is None or isinstance(value, bool):
        text = {None: "null (nothing)", True: "true", False: "false"}[value]
    elif isinstance(value, dict | list):
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


#: The blocks a "must be a mapping" message can list the keys of, by class name.
_SPECS: dict[str, type[BaseModel]] = {
    spec.__name__: spec for spec in (Scenario, ProducerSpec, QueueSpec, ConsumersSpec, ReportSpec)
}

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
}

#: The allowed tags of each discriminated union, by its discriminator key.
_KINDS = {"process": PROCESSES, "dist": DISTRIBUTIONS}

_NAME_HELP = "use lowercase letters, digits, '-' and '_' only (it names the results folder)"


def _choices(value: Any, allowed: Iterable[str]) -> str:
    """``did you mean 'fifo'? must be one of: fifo, lifo, priority``."""
    allowed = list(allowed)
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5) if isinstance(value, str) else []
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}must be one of: {', '.join(allowed)}"


def _allowed(first: ErrorDetails, value: Any) -> str:
    """What is allowed, for a pydantic error that is not one of ours, in plain words."""
    kind = first["type"]
    ctx = first.get("ctx") or {}
    if kind == "literal_error":
        return _choices(value, re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
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
        spec = _SPECS.get(str(ctx.get("class_name")))
        keys = f" with keys {', '.join(spec.model_fields)}" if spec is not None else ""
        return f"must be a mapping{keys} (key: value lines), not a single value"
    message = first["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message.replace("Input should be", "must be")


def format_validation_error(error: ValidationError, data: Any, where: str) -> str:
    """One line for the first error: ``where: field.path: got VALUE; what is allowed``."""
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
    field = ".".join(str(step) for step in path) or "(top level)"
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
        return f"{where}: {field}.{key}: got {_describe(ctx.get('tag'))}; {_choices(ctx.get('tag'), allowed)}"
    if isinstance(cause, FieldError):
        message = str(cause)
        if value is MISSING:
            value = cause.value
    else:
        message = _allowed(first, value)
        if value is MISSING:
            value = first.get("input", MISSING)
    if value is MISSING:
        return f"{where}: {field}: missing; {message}"
    return f"{where}: {field}: got {_describe(value)}; {message}"


def scenario_from_dict(
    data: Any,
    *,
    base_dir: Path | None = None,
    source: Path | None = None,
    where: str = "scenario",
) -> Scenario:
    """Validate raw scenario data; relative data files are looked up in ``base_dir``.

    ``data`` is not changed. Without a ``name``, a scenario read from ``source`` is named
    after the file.
    """
    keys = ", ".join(Scenario.model_fields)
    if data is None:
        raise ScenarioError(f"{where}: (top level): the scenario is empty; write a mapping with the keys {keys}")
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{where}: (top level): got {_describe(data)}; the scenario must be a mapping with the keys {keys}"
        )
    named_after_file = "name" not in data and source is not None
    if named_after_file:
        assert source is not None
        data = {"name": source.stem, **data}
    context = {"base_dir": str(base_dir if base_dir is not None else Path("."))}
    try:
        scenario = Scenario.model_validate(data, context=context)
    except ValidationError as error:
        message = format_validation_error(error, data, where)
        if named_after_file and message.startswith(f"{where}: name: "):
            message += "; the name was taken from the file name, so set name: in the file"
        raise ScenarioError(message) from None
    scenario._raw = copy.deepcopy(data)  # the caller may change their dict later
    scenario._source = source
    return scenario


#: Experiment-level keys: they say how to run a scenario (a grid of points, a stopping rule,
#: a capacity plan, the brokers ``qsim evaluate`` compares), not what it is, so they are not
#: part of :class:`Scenario`. They are taken out of the raw data before the scenario is
#: validated; :mod:`sim.experiments.sweep` (and :mod:`sim.experiments.evaluate`) reads them.
EXPERIMENT_KEYS = ("sweep", "precision", "plan", "evaluate")


def split_experiment(data: Any) -> tuple[Any, dict[str, Any]]:
    """Split raw data into the scenario part and the experiment-level keys (both new dicts)."""
    if not isinstance(data, dict):
        return data, {}
    scenario = {key: value for key, value in data.items() if key not in EXPERIMENT_KEYS}
    experiment = {key: data[key] for key in EXPERIMENT_KEYS if key in data}
    return scenario, experiment


def read_scenario_data(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> Any:
    """Read a scenario file and apply ``overrides`` to its raw data (nothing is validated yet)."""
    path = Path(path)
    data = read_yaml(path)
    if overrides:
        if not isinstance(overrides, Mapping):
            overrides = dict(parse_override(text) for text in overrides)
        if data is None:  # an empty file: the overrides may be the whole scenario
            data = {}
        if isinstance(data, dict):
            data = apply_overrides(data, overrides, where=str(path))
    return data


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> Scenario:
    """Read, override and validate a scenario file.

    ``overrides`` is a mapping ``{"queue.capacity": 5}`` or strings ``"queue.capacity=5"``
    as ``--set`` takes them; they are applied to the raw data before validation, so an
    override is checked like any other value. Experiment-level keys (``sweep``,
    ``precision``, ``plan``) are set aside: a sweep file loads as its base scenario
    (see :func:`sim.experiments.sweep.load_experiment` for the whole experiment).
    """
    path = Path(path)
    data, _ = split_experiment(read_scenario_data(path, overrides))
    return scenario_from_dict(data, base_dir=path.parent, source=path, where=str(path))


__all__ = [
    "EXPERIMENT_KEYS",
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
    "parse_override",
    "read_scenario_data",
    "scenario_from_dict",
    "split_experiment",
]
