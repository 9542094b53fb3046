"""The README is documentation that runs: its commands work and leave the repository as it was,
its numbers are what a fresh run gives, its links and images exist, and its scenario reference
names every key the schema accepts."""

from __future__ import annotations

import glob
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

import sim
from sim.cli import main
from sim.model import autoscale_specs, broker_specs, delivery_specs, fault_specs, policy_specs, schema, specs
from sim.output.tables import headline_block
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
NOT_RUN = {
    "make test": "it is this test suite",
}
"""README commands the test does not run, and why."""


def shell_lines() -> list[str]:
    """Every command of the README's ``sh`` blocks, in order, comments removed, continuations joined."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        pending = ""
        for raw in block.splitlines():
            line = raw.split("  #")[0].strip()
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            if pending + line:
                lines.append(pending + line)
            pending = ""
    return lines


def placeholder(line: str, folder: Path) -> bool:
    """An example with made-up files (``S.yaml``, ``a.yaml``) or an ellipsis: not a command to run."""
    if "..." in line:
        return True
    files = [w for w in shlex.split(line) if w.endswith(".yaml") and "*" not in w]
    return any(not (folder / name).exists() for name in files)


def test_the_readme_shows_commands() -> None:
    runnable = [line for line in shell_lines() if line.startswith("qsim ") and not placeholder(line, ROOT)]
    assert len(runnable) >= 6


def _tracked_copy(destination: Path) -> None:
    """The tracked files of the working tree (as they are now), in a fresh git repository."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)  # keeps times: make sees pyproject.toml older than its stamps
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-qm", "as tracked"], cwd=destination, check=True)


def _stand_in_venv(folder: Path) -> Path:
    """A ``.venv`` whose ``python`` and ``qsim`` are this interpreter's, with make's stamps fresh.

    ``make demo`` then runs its recipe without creating or reinstalling anything (so the real
    ``.venv`` of the checkout is never touched).
    """
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    qsim = bin_dir / "qsim"
    qsim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sim "$@"\n')
    qsim.chmod(qsim.stat().st_mode | stat.S_IEXEC)
    for stamp in (".installed-run", ".installed-dev"):
        (folder / stamp).touch()
    return folder


def _run(line: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    words = shlex.split(line)
    if words[0] == "make":
        done = subprocess.run(["make", "--no-print-directory", *words[1:]], cwd=folder, capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{line}: {done.stderr[-2000:]}"
        return
    assert words[0] == "qsim", f"a README command the test does not know how to run: {line}"
    monkeypatch.chdir(folder)
    expanded = [m for w in words[1:] for m in (sorted(glob.glob(w)) if "*" in w else [w])]
    assert main(expanded) == 0, line


@pytest.mark.slow
def test_readme_commands_run_and_leave_the_repository_unchanged(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every README command, in order, in a copy of the repository: all succeed, and afterwards git
    sees no change (no tracked file rewritten or deleted, nothing new outside ignored folders)."""
    copy = tmp_path / "repo"
    _tracked_copy(copy)
    (copy / ".venv").symlink_to(_stand_in_venv(tmp_path / "venv"), target_is_directory=True)
    (copy / ".git/info/exclude").write_text(".venv\n")
    ran = []
    for line in shell_lines():
        if line in NOT_RUN or placeholder(line, copy):
            continue
        _run(line, copy, monkeypatch)
        ran.append(line)
    assert "make demo" in ran
    assert sum(line.startswith("qsim ") for line in ran) >= 6
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy, check=True,
                            capture_output=True, text=True).stdout
    assert status == ""
    assert (copy / "results/burst-2k-vs-20k/summary.csv").is_file()  # the commands did write their results


def test_readme_links_and_images_point_to_tracked_files() -> None:
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout.split())
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert any(t.endswith(".png") for t in local)
    missing = [t for t in local if t.rstrip("/") not in tracked and not any(f.startswith(t) for f in tracked)]
    assert missing == []


@pytest.mark.slow
def test_flagship_numbers_in_the_readme_are_what_a_fresh_run_gives() -> None:
    fresh = headline_block(sim.run(sim.load_scenario(ROOT / "scenarios/burst-2k-vs-20k.yaml")).summary.iloc[0])
    shown = README[README.index("```\noffered") + 4:]
    shown = shown[: shown.index("```")]
    assert shown == fresh
    assert (ROOT / "docs/flagship-summary.txt").read_text() == fresh  # what `make docs-images` writes


def test_no_file_cites_documents_users_never_see() -> None:
    """The project stands alone: README, code, scenarios and notebooks cite docs/ pages, not internal notes."""
    names = ("domain" + ".md", "design" + ".md", "design " + "card")
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    cited = []
    for name in listed.split():
        path = ROOT / name
        if path.is_file() and path.suffix in (".md", ".py", ".yaml", ".ipynb", ".toml", ".sh", ".txt", ""):
            text = path.read_text(errors="replace").lower()
            cited += [f"{name}: {n}" for n in names if n in text]
    assert cited == []


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_into_the_modelling_reference_reach_a_section() -> None:
    """README, docstrings and notebooks link to sections of docs/modelling.md: every section must exist."""
    page = (ROOT / "docs/modelling.md").read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", page, flags=re.M)}
    assert {"queue-management", "aws-lambda", "sqs-and-the-lambda-event-source-mapping",
            "clients-timeouts-retries-and-backoff", "prices"} <= anchors
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    wanted = set(re.findall(r"\]\(#([\w-]+)\)", page))
    for name in listed.split():
        if name.endswith((".md", ".py", ".ipynb", ".yaml")) and (ROOT / name).is_file():
            wanted |= set(re.findall(r"modelling\.md#([\w-]+)", (ROOT / name).read_text(errors="replace")))
    assert wanted - anchors == set()


def schema_models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for module in (schema, specs, policy_specs, delivery_specs, autoscale_specs, broker_specs, fault_specs):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, specs.Strict) and value is not specs.Strict:
                found[value.__name__] = value
    return list(found.values())


@pytest.mark.parametrize("model", schema_models(), ids=lambda m: m.__name__)
def test_every_scenario_key_is_documented(model: type[BaseModel]) -> None:
    missing = [name for name in model.model_fields
               if not re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", README) and f"{name}:" not in README]
    assert missing == [], f"{model.__name__}: document {missing} in the README's scenario format"
