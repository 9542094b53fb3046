"""The README is documentation that runs: its commands work, its numbers are the committed
output, and its scenario reference names every key the schema accepts."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

from sim.cli import main
from sim.model import autoscale_specs, delivery_specs, policy_specs, schema, specs
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """``qsim ...`` lines of the README's shell blocks that name real files (not S.yaml examples)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("qsim ") and not re.search(r"\b[Sabc]\.yaml\b", line) and not line.endswith("\\"):
                commands.append(line)
    return commands


def test_the_readme_shows_commands() -> None:
    assert len(readme_commands()) >= 6


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    words = shlex.split(command)[1:]
    if "--out" in words:
        words[words.index("--out") + 1] = str(tmp_path / "out")
    elif words[0] != "check":
        words += ["--out", str(tmp_path / "out")]
    if words[0] != "check":
        words.append("--no-figures")
    expanded = [match for word in words for match in (sorted(glob.glob(word)) if "*" in word else [word])]
    assert main(expanded) == 0


def test_flagship_numbers_in_the_readme_are_the_committed_results() -> None:
    row = pd.read_csv(ROOT / "results/burst-2k-vs-20k/summary.csv").iloc[0]
    block = README[README.index("```\noffered"):]
    for column, shown in (("completed", f"{int(row['completed']):,}"), ("late", f"{int(row['late']):,}"),
                          ("max_queue", f"{int(row['max_queue']):,}"),
                          ("timeout_rate", f"{row['timeout_rate']:.2%}")):
        assert re.search(rf"{column}\s+{re.escape(shown)}", block), column


def schema_models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for module in (schema, specs, policy_specs, delivery_specs, autoscale_specs):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, specs.Strict) and value is not specs.Strict:
                found[value.__name__] = value
    return list(found.values())


@pytest.mark.parametrize("model", schema_models(), ids=lambda m: m.__name__)
def test_every_scenario_key_is_documented(model: type[BaseModel]) -> None:
    missing = [name for name in model.model_fields
               if not re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", README) and f"{name}:" not in README]
    assert missing == [], f"{model.__name__}: document {missing} in the README's scenario format"
