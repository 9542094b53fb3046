"""Reading scenario files: YAML in, a validated :class:`Scenario` out, or one clear line of error.

The friendly layer over :mod:`sim.schema`: it reads YAML (refusing duplicate keys, which
``yaml.safe_load`` silently merges), applies ``--set key.path=value`` overrides to the raw
data before validation, and turns pydantic's errors into a single line naming the file,
the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.schema import FieldError, Scenario


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message is one line meant for the user."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys instead of keeping the last one."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}; keep only one", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, raising :class:`ScenarioError` with the line and column of a mistake."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read the scenario file ({error.strerror}); check the path") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ScenarioError(f"{path}: {where}malformed YAML: {problem}; fix the syntax") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.path=value`` into the path and the YAML value (``800/s`` stays a string, ``5`` is an int)."""
    path, equals, value = text.partition("=")
    if not equals or not path.strip():
        raise ScenarioError(f"--set {text!r}: write key.path=value, e.g. producers.0.arrivals.rate=800/s")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return path.strip(), parsed


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted path set (list items by index, missing maps created)."""
    result = copy.deepcopy(data)
    for path, value in overrides.items():
        keys = path.split(".")
        node: Any = result
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            where = ".".join(keys[: depth + 1])
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ScenarioError(
                        f"--set {path}: {where} is not an item of a list of {len(node)}; "
                        f"use an index from 0 to {len(node) - 1}"
                    )
                if last:
                    node[int(key)] = value
                else:
                    node = node[int(key)]
            elif isinstance(node, dict):
                if last:
                    node[key] = value
                else:
                    node = node.setdefault(key, {})
            else:
                raise ScenarioError(f"--set {path}: {'.'.join(keys[:depth])} is a value, not a mapping or list")
    return result


def _raw_at(data: Any, loc: Iterable[str | int]) -> tuple[list[str | int], Any]:
    """Follow ``loc`` through the raw data, keeping only the steps that exist there.

    Pydantic puts union tags (``poisson``) and validator names in error locations; the
    user wrote neither, so the path shown is the part that walks through their data.
    """
    path: list[str | int] = []
    node = data
    found = True
    items = list(loc)
    for index, step in enumerate(items):
        if isinstance(node, dict) and step in node:
            node = node[step]
            path.append(step)
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
            path.append(step)
        elif index == len(items) - 1 and isinstance(step, str) and not step.endswith("]"):
            path.append(step)  # a missing key
            found = False
        else:
            continue
    return path, (node if found else None)


def _describe(value: Any) -> str:
    if isinstance(value, dict | list):
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_validation_error(error: ValidationError, data: Any, where: str) -> str:
    """One line for the first error: ``where: field.path: got VALUE; what is allowed``."""
    first = error.errors()[0]
    loc: list[str | int] = list(first["loc"])
    ctx = first.get("ctx") or {}
    cause = ctx.get("error")
    kind = first["type"]
    if isinstance(cause, FieldError):
        loc += list(cause.path)
        message = str(cause)
    else:
        message = first["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        message = message.replace("Input should be", "must be").replace("Field required", "required")
    if kind == "unknown_key":
        loc.append(ctx["key"])
    path, raw_value = _raw_at(data, loc)
    field = ".".join(str(step) for step in path) or "(top level)"
    if kind == "missing":
        return f"{where}: {field}: missing; this key is required"
    if kind == "unknown_key":
        return f"{where}: {field}: {message}"
    if kind == "union_tag_invalid":
        tag = ctx.get("tag")
        discriminator = str(ctx.get("discriminator", "")).strip("'")
        allowed = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"{where}: {field}.{discriminator}: got {tag!r}; must be one of {allowed}"
    if kind == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "")).strip("'")
        return f"{where}: {field}.{discriminator}: missing; say which kind this is"
    shown = cause.value if isinstance(cause, FieldError) and cause.value is not None else raw_value
    return f"{where}: {field}: got {_describe(shown)}; {message}"


def scenario_from_dict(
    data: Any,
    *,
    base_dir: Path | None = None,
    source: Path | None = None,
    where: str = "scenario",
) -> Scenario:
    """Validate raw scenario data; relative data files are looked up in ``base_dir``."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: the scenario must be a mapping of keys (name:, producers:, ...), got {_describe(data)}")
    if "name" not in data and source is not None:
        data = {"name": source.stem, **data}
    context = {"base_dir": str(base_dir if base_dir is not None else Path("."))}
    try:
        scenario = Scenario.model_validate(data, context=context)
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error, data, where)) from None
    scenario._raw = data
    scenario._source = source
    return scenario


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> Scenario:
    """Read, override and validate a scenario file.

    ``overrides`` is a mapping ``{"queue.capacity": 5}`` or strings ``"queue.capacity=5"``
    as ``--set`` takes them; they are applied to the raw data before validation, so an
    override is checked like any other value.
    """
    path = Path(path)
    data = read_yaml(path)
    if overrides:
        if not isinstance(overrides, Mapping):
            overrides = dict(parse_override(text) for text in overrides)
        if not isinstance(data, dict):
            data = {}
        data = apply_overrides(data, overrides)
    return scenario_from_dict(data, base_dir=path.parent, source=path, where=str(path))


# Re-exported for ``Scenario.from_dict``-style use from the package root.
__all__ = ["Scenario", "ScenarioError", "load_scenario", "scenario_from_dict", "apply_overrides", "parse_override"]
