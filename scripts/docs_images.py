"""Regenerate what the README shows from the bundled scenarios: ``make docs-images``.

Writes ``docs/images/flagship-timeseries.png`` and ``docs/flagship-summary.txt`` (the flagship
``scenarios/burst-2k-vs-20k.yaml``, seed and replication as in the file) and
``docs/images/load-curve-fifo-vs-lifo.png`` (the curves of ``scenarios/load-curve-fifo-vs-lifo.yaml``).
Everything runs in this process, so the numbers are the same on every machine; nothing is
written under ``results/``. Commit the regenerated files with the change that altered them.

    python scripts/docs_images.py [--out DIR]      # default: docs/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sim
from sim.experiments.runner import SweepResult, sweep
from sim.experiments.sweep import load_experiment
from sim.output import report
from sim.output.tables import headline_block

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios/burst-2k-vs-20k.yaml"
LOAD_CURVE = ROOT / "scenarios/load-curve-fifo-vs-lifo.yaml"


def flagship_summary() -> str:
    """The README's summary block of the flagship run."""
    result = sim.run(sim.load_scenario(FLAGSHIP))
    return headline_block(result.summary.iloc[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    out = parser.parse_args(argv).out
    (out / "images").mkdir(parents=True, exist_ok=True)
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
