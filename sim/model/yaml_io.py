"""YAML as scenarios need it: duplicate keys refused, YAML 1.2 booleans, errors with line and column.

``yaml.safe_load`` silently keeps the last of two equal keys and reads ``on``/``off``/``yes``/
``no`` as booleans (YAML 1.1), so ``retry: {on: [timeout]}`` would arrive as ``{True: ...}``.
The loader here refuses the first and reads only ``true``/``false`` as booleans. Scenario
files are read with the same care as data files (a size cap, no devices).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sim.model.datafiles import MAX_SCENARIO_BYTES, Unreadable, read_capped
from sim.model.errors import ScenarioError


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping (``yaml.safe_load`` would silently keep the last)."""


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and reads booleans the YAML 1.2 way."""


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mapping_without_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping below says so
            continue
        if first is not None:
            problem = f"key {key!r} appears twice (first on line {first.line + 1}); keep only one"
            raise DuplicateKeyError(None, None, problem, key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`StrictLoader` (``yaml.YAMLError`` on a mistake)."""
    return yaml.load(text, Loader=StrictLoader)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, raising :class:`ScenarioError` with the line and column of a mistake."""
    try:
        text = read_capped(path, MAX_SCENARIO_BYTES, pipes=True).decode("utf-8")
    except Unreadable as reason:
        raise ScenarioError(f"{path}: cannot read the scenario file ({reason}); check the path") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file (not UTF-8); give a YAML scenario file") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        if isinstance(error, DuplicateKeyError):
            raise ScenarioError(f"{path}: {where}{problem}") from None
        raise ScenarioError(f"{path}: {where}malformed YAML: {problem}; fix the syntax") from None
    except RecursionError:  # deeply nested flow collections ([[[[...]]]])
        raise ScenarioError(f"{path}: nested too deeply to read; write a flatter scenario") from None
