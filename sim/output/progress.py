"""The command line's progress bar and its one-line notes, on stderr.

A bar appears only when the work lasts longer than its delay (1-2 s): a quick command prints
nothing on stderr. Once it has been shown, each slow step after the runs (a summary of
millions of requests, a large table, the figures) gets a line of its own.
"""

from __future__ import annotations

import sys
import time

from sim.experiments.executors import Task
from sim.experiments.runner import Runner
from sim.model.units import format_duration


class ProgressBar:
    """Runs done, rate and ETA on stderr; it appears only if the work lasts more than ``delay`` seconds.

    During an in-process run the bar also moves within the run (simulated time against ``until``,
    else arrivals and resolved requests), so a single long run shows progress too.
    """

    def __init__(self, delay: float, what: str = "") -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1, delay=delay, leave=False, file=sys.stderr, unit="run",
                         bar_format="{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}, {rate_fmt}]")
        self.what = what
        self.runner: Runner | None = None
        self.done = 0
        self.known = 1
        self.delay = delay
        self.began = time.perf_counter()

    def __call__(self, done: int, known: int) -> None:
        self.done, self.known = done, max(1, known)
        self._show(float(done), "")

    def _show(self, position: float, extra: str) -> None:
        self._bar.total = self.known
        points = ""
        if self.runner is not None and self.what:
            done, asked = self.runner.points
            points = f", {done}/{asked} {self.what}"
        self._bar.set_description_str(f"{self.done}/{self.known} runs{points}{extra}", refresh=False)
        self._bar.update(min(position, float(self.known)) - self._bar.n)  # draws only after the delay

    def within(self, task: Task, now: float, share: float) -> None:
        """Progress inside an in-process run: the share of it done, and its simulated time."""
        self._show(self.done + share, f", sim time {format_duration(now)}")

    @property
    def shown(self) -> bool:
        """Whether the work has lasted long enough for the bar to be drawn."""
        return time.perf_counter() - self.began >= self.delay

    def phase(self, what: str) -> None:
        """A slow step after the runs (a summary, a large table, figures): its own line, if a bar was shown."""
        if self.shown:
            from tqdm import tqdm

            tqdm.write(f"qsim: {what}...", file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def note(message: str) -> None:
    """One line on stderr that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(f"qsim: note: {message}", file=sys.stderr)
