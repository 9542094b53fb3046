"""``qsim animate``: run a scenario once and write its animation (GIF, HTML or MP4).

Its options are in :mod:`sim.cli.arguments`; this module is what the command does.
The command runs replication 0 with every request kept (``report.requests: all``: the dots
need every record), then replays its records over the window ``--from``/``--to``. Everything
that can be checked before the run is (the output file, the numbers); the window is checked
against the run (it must overlap the run and hold a request). Bad input is one line, exit 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sim.experiments.runner import run
from sim.model.scenario import ScenarioError, load_scenario, parse_override
from sim.model.units import format_duration, parse_duration
from sim.output.animation import scene_of
from sim.output.movie import check_output, save


def _time(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ScenarioError(f"{option}: got {text!r}; {error}") from None


def _checked(args: argparse.Namespace) -> tuple[float, float | None]:
    """The window's ends, after checking every number given (before anything runs)."""
    if args.dots < 1:
        raise ScenarioError(f"--dots: got {args.dots}; give the number of requests to draw, at least 1 (e.g. 300)")
    if not args.fps > 0 or args.fps > 60:
        raise ScenarioError(f"--fps: got {args.fps:g}; give frames per second between 0 and 60, e.g. 10")
    if args.speed is not None and not args.speed > 0:
        raise ScenarioError(f"--speed: got {args.speed:g}; give simulated seconds per second of video > 0, e.g. 1")
    if args.seed is not None and args.seed < 0:
        raise ScenarioError(f"--seed: got {args.seed}; give an integer >= 0")
    start, end = _time("--from", args.start), _time("--to", args.end)
    assert start is not None
    if start < 0:
        raise ScenarioError(f"--from: got {args.start}; give a time >= 0s")
    if end is not None and end <= start:
        raise ScenarioError(f"--from {args.start} is not before --to {args.end}; give --from earlier than --to")
    return start, end


def animate_scenario(args: argparse.Namespace) -> int:
    """Run the scenario once and write the animation; print what was written."""
    start, end = _checked(args)
    overrides: dict[str, Any] = dict(parse_override(text) for text in args.overrides)
    overrides["report.requests"] = "all"
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.engine is not None:
        overrides["engine"] = args.engine
    scenario = load_scenario(args.scenario, overrides)
    out: Path = args.out if args.out is not None else Path("results") / f"{scenario.name}.gif"
    check_output(out)
    began = time.perf_counter()
    result = run(scenario, replications=1)
    scene = scene_of(result, start, end, fps=args.fps, speed=args.speed, max_dots=args.dots)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.partial{out.suffix}")
    try:
        save(scene, temporary)
        temporary.replace(out)
    finally:
        temporary.unlink(missing_ok=True)
    shown = scene.replay
    sample = (f", {shown.requests_shown:,} of {shown.requests_in_window:,} requests drawn" if shown.sampled
              else f", {shown.requests_shown:,} requests")
    print(f"wrote {out}: {len(scene.times)} frames at {args.fps:g} fps, {format_duration(shown.start)} to "
          f"{format_duration(shown.end)}{sample} ({time.perf_counter() - began:.1f} s)")
    return 0
