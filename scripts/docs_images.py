"""Regenerate what the README shows from the bundled scenarios: ``make docs-images``.

Writes ``docs/images/flagship-timeseries.png`` and ``docs/flagship-summary.txt`` (the flagship
``scenarios/burst-2k-vs-20k.yaml``, seed and replication as in the file) and
``docs/images/load-curve-fifo-vs-lifo.png`` (the curves of ``scenarios/load-curve-fifo-vs-lifo.yaml``),
and the README's gallery: the animations of :data:`ANIMATIONS`, written by ``qsim animate`` itself,
and one figure per notebook, copied from the executed notebook's cell whose metadata names it
(``"gallery": "<file>.png"``), so the gallery shows exactly what the notebook shows. Everything
runs in this process, so the numbers are the same on every machine; nothing is written under
``results/``. Commit the regenerated files with the change that altered them (re-execute a
notebook first when its figure changed).

    python scripts/docs_images.py [--out DIR] [--only gallery]      # default: docs/, everything
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import sim
from sim.cli import main as qsim
from sim.experiments.runner import SweepResult, sweep
from sim.experiments.sweep import load_experiment
from sim.output import report
from sim.output.tables import headline_block

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios/burst-2k-vs-20k.yaml"
LOAD_CURVE = ROOT / "scenarios/load-curve-fifo-vs-lifo.yaml"
NOTEBOOKS = ROOT / "notebooks"

ANIMATIONS: dict[str, list[str]] = {
    "01-fifo-zombies.gif": ["scenarios/encore-fifo-vs-lifo.yaml", "--to", "90s"],
    "01-lifo.gif": ["scenarios/encore-fifo-vs-lifo.yaml", "--to", "90s", "--set", "queue.discipline=lifo"],
    "01-priority.gif": ["scenarios/encore-priority.yaml", "--to", "90s"],
    "01-red.gif": ["scenarios/encore-red.yaml", "--to", "90s"],
    "02-sqs-ramp.gif": ["scenarios/sqs-lambda-burst.yaml", "--to", "60s"],
    "03-fanout.gif": ["scenarios/pubsub-fanout.yaml", "--from", "28s", "--to", "50s"],
    "04-kafka-crash.gif": ["scenarios/kafka-crash-rebalance.yaml", "--from", "50s", "--to", "130s"],
    "04-redis-outage.gif": ["scenarios/redis-pubsub-outage.yaml", "--from", "25s", "--to", "45s"],
    "05-too-few-consumers.gif": ["scenarios/capacity-plan-burst.yaml", "--to", "8s", "--fps", "8", "--speed", "0.5",
                                "--set", "consumers.concurrency=2000"],
}
"""The gallery's animations: file name -> the ``qsim animate`` arguments that make it (from the repository root)."""


def flagship_summary() -> str:
    """The README's summary block of the flagship run."""
    result = sim.run(sim.load_scenario(FLAGSHIP))
    return headline_block(result.summary.iloc[0])


def notebook_figures() -> dict[str, bytes]:
    """The gallery's figures: file name -> the PNG that a notebook's marked cell shows (its first image)."""
    figures: dict[str, bytes] = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            name = cell.get("metadata", {}).get("gallery")
            if name is None:
                continue
            images = [output["data"]["image/png"] for output in cell.get("outputs", [])
                      if "image/png" in output.get("data", {})]
            if not images:
                raise SystemExit(f"{path.name}: the cell marked gallery={name!r} shows no figure; execute the notebook")
            figures[name] = base64.b64decode(images[0])
    return figures


def gallery(images: Path) -> None:
    """The README gallery: the animations (``qsim animate``) and the notebooks' marked figures."""
    for name, arguments in ANIMATIONS.items():
        arguments = [str(ROOT / arguments[0]), *arguments[1:]]
        if qsim(["animate", *arguments, "--out", str(images / name)]) != 0:
            raise SystemExit(f"qsim animate {' '.join(arguments)} failed")
    for name, png in notebook_figures().items():
        (images / name).write_bytes(png)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--only", choices=["gallery"], help="regenerate only the README gallery")
    options = parser.parse_args(argv)
    out = options.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    gallery(out / "images")
    if options.only == "gallery":
        return 0
    result = sim.run(sim.load_scenario(FLAGSHIP))
    (out / "flagship-summary.txt").write_text(headline_block(result.summary.iloc[0]))
    report.run_figures(result)["timeseries"].savefig(out / "images/flagship-timeseries.png", dpi=100)
    curves = sweep(load_experiment(LOAD_CURVE))
    assert isinstance(curves, SweepResult)
    report.sweep_figures(curves)["curves"].savefig(out / "images/load-curve-fifo-vs-lifo.png", dpi=90)
    print(f"wrote {out}/flagship-summary.txt and {out}/images/*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
