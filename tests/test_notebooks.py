"""The teaching notebooks: committed executed, re-executed by the tests with the same numbers, and the
README gallery copied from them (docs that run).

The committed outputs are what a reader sees on a code host without running anything; the slow test
re-executes every notebook with the current code and requires every printed number and table to be
what is committed (fixed seeds: any change in the engine's results shows up here as a diff, and the
fix is to re-execute the notebook and look at its figures again).
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from tests.helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01-queueing-demo-by-demo", "02-lambdas-and-a-burst", "03-when-to-use-events",
            "04-choosing-a-message-queue", "05-capacity-planning"]
SECONDS = 60
"""Longest a notebook may take to execute (they take 8-25 s on two shared cores)."""


def _docs_images() -> Any:
    """``scripts/docs_images.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_images", ROOT / "scripts/docs_images.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texts(notebook: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """Every printed text and every table's text form, by cell: what a re-execution must reproduce."""
    texts = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "stream":
                texts.append((index, output["text"]))
            elif "text/plain" in output.get("data", {}) and not any(k.startswith("image/") for k in output["data"]):
                texts.append((index, output["data"]["text/plain"]))
    return texts


def test_the_notebooks_are_the_teaching_set() -> None:
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_every_cell_executed_in_order(path: Path) -> None:
    """So that it reads on a code host: every code cell ran, top to bottom, once, without an error."""
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [output for cell in code for output in cell.outputs if output.output_type == "error"]
    figures = sum("image/png" in output.get("data", {}) for cell in code for output in cell.outputs)
    assert figures >= 5  # a picture for every idea
    assert "try it" in " ".join(cell.source.lower() for cell in notebook.cells if cell.cell_type == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_its_images_and_links_exist(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    local = [t for t in re.findall(r"\]\(([^)#\s]+)", markdown) if not re.match(r"[a-z]+:", t)]
    assert local
    assert [t for t in local if not (path.parent / t).exists()] == []


def test_the_gallery_figures_are_the_notebooks_figures() -> None:
    """``make docs-images`` copies each notebook's marked figure; the committed copy must be the current one."""
    figures = _docs_images().notebook_figures()
    assert sorted(name[:2] for name in figures) == sorted(stem[:2] for stem in EXPECTED)  # one per notebook
    for name, png in figures.items():
        assert (ROOT / "docs/images" / name).read_bytes() == png, f"{name}: run make docs-images"


def test_the_gallery_animations_are_committed_and_shown() -> None:
    """Each animation ``make docs-images`` writes exists, is an animated GIF, and a notebook or the README
    shows it; the README's gallery shows one animation and one figure per notebook."""
    readme = (ROOT / "README.md").read_text()
    notebooks = "".join(path.read_text() for path in NOTEBOOKS)
    for name in _docs_images().ANIMATIONS:
        with Image.open(ROOT / "docs/images" / name) as image:
            assert image.format == "GIF"
            assert image.n_frames > 50
        assert f"(docs/images/{name})" in readme or f"(../docs/images/{name})" in notebooks
    shown = re.findall(r"\(docs/images/(\d\d)-[\w-]+\.(gif|png)\)", readme)
    assert sorted(shown) == sorted((stem[:2], kind) for stem in EXPECTED for kind in ("gif", "png"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client's own, not ours
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_re_executing_reproduces_every_number(path: Path) -> None:
    committed = nbformat.read(path, as_version=4)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    began = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    seconds = time.perf_counter() - began
    assert _texts(notebook) == _texts(committed), "the numbers changed: re-execute the notebook, look at it"
    assert seconds < SECONDS

