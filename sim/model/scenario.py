"""Reading scenario files: YAML in, a validated :class:`Scenario` out, or one clear line of error.

The friendly layer over :mod:`sim.model.schema`: it reads YAML (:mod:`sim.model.yaml_io`:
duplicate keys refused), applies ``--set key.path=value`` overrides to the raw data before
validation, and turns pydantic's errors into a single line naming the file, the field
path, the bad value and what is allowed (:mod:`sim.model.explain`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.model.errors import ScenarioError, describe
from sim.model.explain import format_validation_error
from sim.model.schema import EXPERIMENT_KEYS, Scenario
from sim.model.yaml_io import load_yaml, read_yaml


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.path=value`` into the path and the YAML value (``800/s`` stays a string, ``5`` is an int)."""
    path, equals, value = text.partition("=")
    path = path.strip()
    if not equals or not path or "" in path.split("."):
        raise ScenarioError(f"--set {text!r}: write key.path=value, e.g. producers.0.arrivals.rate=800/s")
    try:
        parsed = load_yaml(value) if value.strip() else ""
    except (yaml.YAMLError, RecursionError):
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
                    f"{where}: --set {path}: {parent} is {describe(node)}, a single value, not a mapping or list; "
                    f"set {parent} itself"
                )
    return result


def scenario_from_dict(
    data: Any,
    *,
    base_dir: Path | None = None,
    source: Path | None = None,
    where: str = "scenario",
) -> Scenario:
    """Validate raw scenario data; relative data files are looked up in ``base_dir``.

    ``data`` is not changed. Without a ``name``, a scenario read from ``source`` is named
    after the file. Experiment keys (``sweep``, ``precision``, ``plan``) are set aside, as
    :func:`load_scenario` does.
    """
    keys = ", ".join(Scenario.model_fields)
    if data is None:
        raise ScenarioError(f"{where}: (top level): the scenario is empty; write a mapping with the keys {keys}")
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{where}: (top level): got {describe(data)}; the scenario must be a mapping with the keys {keys}"
        )
    data, _ = split_experiment(data)
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
    "read_yaml",
    "scenario_from_dict",
    "split_experiment",
]
