"""report.html is one self-contained page: no external reference, figures embedded, the tables there.

Rendering in a browser is checked by ``scripts/render_report.sh`` (headless Chromium), not
here, so the suite does not depend on a browser.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sim.cli import main

SCENARIO = """\
# A small M/M/2 with a client timeout, for report tests.
name: small-report
seed: 4
replications: 2
producers:
  - name: clients
    arrivals: {process: poisson, rate: 40/s, count: 200}
    timeout: 150ms
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 40ms}
report: {bucket: 500ms}
"""

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Collects every tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def assert_self_contained(path: Path, figures: int) -> Page:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = parse(path)
    names = [tag for tag, _ in page.tags]
    assert "script" not in names
    assert "link" not in names
    assert "iframe" not in names
    for tag, attrs in page.tags:
        for attribute in ("src", "href", "srcset", "data"):
            value = attrs.get(attribute)
            if value is not None:
                assert value.startswith("data:image/png;base64,"), (tag, attribute, value[:60])
    assert not re.search(r"url\(|@import|https?://", text.split("<body>")[0])  # nothing fetched by the CSS
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == figures
    for source in images:
        assert source is not None
        assert base64.b64decode(source.removeprefix("data:image/png;base64,")).startswith(PNG)
    return page


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "small-report.yaml"
    path.write_text(SCENARIO)
    return path


def test_a_run_report_embeds_its_figures_table_and_scenario(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(scenario), "--out", str(out), "--json"]) == 0
    page = assert_self_contained(out / "report.html", figures=3)
    text = " ".join(page.text)
    assert "small-report" in text
    assert "Summary" in text
    assert "Scenario" in text
    assert "rate: 40/s" in text  # the scenario as written
    cells = sum(1 for tag, _ in page.tags if tag == "td")
    assert cells >= 4 * 15  # two replications and three aggregate rows of the summary, 15 columns


def test_a_sweep_report_has_the_curves(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert main(["run", str(scenario), "--out", str(out), "--json", "--workers", "1",
                 "--sweep", "consumers.concurrency=2,3"]) == 0
    page = assert_self_contained(out / "report.html", figures=2)  # curves and latency distributions
    alts = [attrs.get("alt") for tag, attrs in page.tags if tag == "img"]
    assert alts == ["curves", "latency-cdf"]
    assert "consumers.concurrency" in " ".join(page.text)


def test_without_figures_the_report_has_none_and_old_ones_are_removed(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(scenario), "--out", str(out), "--json"]) == 0
    assert len(list((out / "figures").glob("*.png"))) == 3
    assert main(["run", str(scenario), "--out", str(out), "--json", "--no-figures"]) == 0
    assert_self_contained(out / "report.html", figures=0)
    assert not list((out / "figures").glob("*.png"))


def test_comparison_and_plan_reports_are_self_contained(scenario: Path, tmp_path: Path) -> None:
    assert main(["compare", str(scenario), "--vary", "queue.discipline=fifo,lifo", "--out", str(tmp_path / "c"),
                 "--json", "--workers", "1"]) == 0
    page = assert_self_contained(tmp_path / "c" / "report.html", figures=2)
    assert "Comparison" in " ".join(page.text)
    assert main(["plan", str(scenario), "--vary", "consumers.concurrency", "--min", "1", "--max", "4",
                 "--target", "wait_mean<=20ms", "--out", str(tmp_path / "p"), "--json", "--workers", "1"]) == 0
    page = assert_self_contained(tmp_path / "p" / "report.html", figures=1)
    assert "Probes" in " ".join(page.text)


class Cells(HTMLParser):
    """The text of every table cell."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self._inside = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.cells[-1] += data


def cells(path: Path) -> list[str]:
    parser = Cells()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.cells


def test_every_number_in_a_report_is_in_its_unit_without_float_tails(scenario: Path, tmp_path: Path) -> None:
    commands = {
        "run": ["run", str(scenario)],
        "sweep": ["run", str(scenario), "--sweep", "consumers.concurrency=2,3"],
        "compare": ["compare", str(scenario), "--vary", "queue.discipline=fifo,lifo"],
        "plan": ["plan", str(scenario), "--vary", "consumers.concurrency", "--min", "1", "--max", "4",
                 "--target", "wait_mean<=20ms"],
    }
    for name, command in commands.items():
        out = tmp_path / name
        assert main([*command, "--out", str(out), "--json", "--workers", "1", "--no-figures"]) == 0
        shown = cells(out / "report.html")
        assert len(shown) > 10, name
        long_numbers = [cell for cell in shown if re.search(r"\d{10,}|\d\.\d{5,}", cell)]
        assert long_numbers == [], name
    probes = cells(tmp_path / "plan" / "report.html")
    assert any(re.fullmatch(r"\d+(\.\d+)?(ms|us|s)", cell) for cell in probes)  # wait_mean in its unit
