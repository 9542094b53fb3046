"""A run as a moving picture: requests as dots arriving, waiting, served and leaving, coloured by fate.

Like the demos of Sam Rose's *Queueing* (encore.dev, 2024): each lane is a stage, its queue on
the left (the oldest request at the front, next to the consumers) and its consumers on the
right; dots leave into bins, one per fate, whose counters count every request of the run. Below,
each lane's queue length and the goodput, drawn up to the clock. Where each dot is comes from
:mod:`sim.output.replay`, which reads the run's records: nothing is simulated again.

Colours: a dot waiting or in service is light (waiting) or dark (in service) blue while its
client still waits for it, and turns yellow once its client has given up (served anyway, it is
zombie work); it leaves in its fate's colour (the outcome colours of every qsim figure). Shapes
tell producers (traffic classes) apart. :mod:`sim.output.movie` writes it as a GIF, HTML or MP4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib import animation
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from sim.experiments.runner import Result
from sim.output.figstyle import MARKERS, colour
from sim.output.plots import OUTCOME_COLOURS
from sim.output.replay import (
    FATES,
    MAX_DOTS,
    Replay,
    departed_counts,
    frame_times,
    goodput,
    replay,
    service_slots,
    waiting_counts,
)
from sim.output.scene_layout import (
    BINS_X,
    FATE_COLOURS,
    FIGURE_SIZE,
    FLOW_AXES,
    FLOW_WIDTH_INCHES,
    GIVEN_UP_COLOUR,
    SERVING_COLOUR,
    TOP,
    WAITING_COLOUR,
    Box,
    Layout,
    layout_of,
    positions,
)


def _outline(axes: Axes, box: Box, colour_: str = "#ced4da", width: float = 0.8) -> None:
    axes.add_patch(Rectangle((box.x0, box.y0), box.x1 - box.x0, box.y1 - box.y0, fill=False, edgecolor=colour_,
                             linewidth=width))


def _slots(axes: Axes, box: Box) -> None:
    """Empty squares for the places of a small box (the consumers, the room of a bounded queue)."""
    cx, cy = box.cells(np.arange(box.capacity))
    side = box.grid[2] * 0.86
    for px, py in zip(cx, cy, strict=True):
        axes.add_patch(Rectangle((px - side / 2, py - side / 2), side, side, fill=False, edgecolor="#dee2e6",
                                 linewidth=0.6))


def _lane_labels(axes: Axes, scene: Replay, lane: int, queue: Box, service: Box) -> None:
    """Name the lane (with stages), its queue and its consumers."""
    middle = (queue.y0 + queue.y1) / 2
    if len(scene.lanes) > 1:
        axes.text(0.005, middle + 0.004, scene.lanes[lane], fontsize=8, fontweight="bold", va="bottom")
    bounded = scene.capacities[lane] if lane < len(scene.capacities) else None
    if scene.brokered[lane]:
        queue_name, service_name = "visible", "in flight"
    else:
        queue_name = "no queue" if bounded == 0 else ("queue" if bounded is None else f"queue ({bounded:,})")
        count = scene.concurrency[lane]
        service_name = f"{count:,} consumer{'s' if count > 1 else ''}"
    for box, name in ((queue, queue_name), (service, service_name)):
        axes.text(box.x0, box.y1 + 0.003, name, fontsize=7.5, va="bottom", color="#495057")
    if lane < len(scene.handoffs) and scene.handoffs[lane]:
        targets = ", ".join(scene.lanes[k] for k in scene.handoffs[lane])
        axes.text(service.x1 + 0.006, middle - 0.004, f"then {targets}", fontsize=7, va="top", color="#6c757d")


def _draw_boxes(axes: Axes, scene: Replay, layout: Layout) -> dict[int, Text]:
    """The still part: lanes, bins, their names, empty slots, the arrows of the flow; returns the bins' labels."""
    arrow = {"arrowstyle": "-|>", "color": "#adb5bd", "linewidth": 0.8}
    for lane, (queue, service) in enumerate(zip(layout.queues, layout.services, strict=True)):
        for box, slotted in ((queue, layout.queue_slots[lane]), (service, layout.service_slots[lane])):
            _outline(axes, box)
            if slotted:
                _slots(axes, box)
        _lane_labels(axes, scene, lane, queue, service)
        middle = (queue.y0 + queue.y1) / 2
        for tail, head in ((0.0, queue.x0), (queue.x1, service.x0), (service.x1, BINS_X[0])):
            axes.annotate("", xy=(head - 0.003, middle), xytext=(tail + 0.003, middle), arrowprops=arrow)
    labels = {}
    for code, box in layout.bins.items():
        _outline(axes, box, FATE_COLOURS[FATES[code]], 1.0)
        labels[code] = axes.text(box.x0, box.y1 + 0.003, FATES[code], fontsize=7.5, va="bottom", color="#212529")
    return labels


def _legend(figure: Figure, scene: Replay, layout: Layout) -> None:
    def dot(face: str, label: str, marker: str = "o") -> Line2D:
        return Line2D([], [], marker=marker, linestyle="", markerfacecolor=face, markeredgecolor="#495057",
                      markeredgewidth=0.4, markersize=6, label=label)

    brokered = all(scene.brokered)
    handles = [dot(WAITING_COLOUR, "visible" if brokered else "waiting"),
               dot(SERVING_COLOUR, "in flight" if brokered else "in service"),
               dot(GIVEN_UP_COLOUR, "client gave up")]
    handles += [dot(FATE_COLOURS[FATES[code]], FATES[code].replace("_", " ")) for code in layout.bins]
    if len(scene.producers) > 1:
        handles += [dot("#ffffff", name, MARKERS[k % len(MARKERS)]) for k, name in enumerate(scene.producers)]
    figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.405), ncol=min(len(handles), 9),
                  fontsize=7.5, frameon=False, handletextpad=0.2, columnspacing=1.0)


def _note(scene: Replay, title: str) -> str:
    """The line above the flow: the scenario, and what the dots are when they are not every request."""
    what = "requests (one dot per attempt)" if scene.attempts else "requests"
    note = f"{title}   " if title else ""
    if scene.sampled:
        note += (f"showing {scene.requests_shown:,} of {scene.requests_in_window:,} {what} (a uniform sample); "
                 "counters and curves count them all")
    elif scene.attempts:
        note += "one dot per attempt"
    return note


@dataclass
class Scene:
    """The figure of an animation and how to draw it at any frame of its window."""

    replay: Replay
    times: np.ndarray
    """The simulated time of each frame (see :func:`sim.output.replay.frame_times`)."""
    fps: float = 10.0
    title: str = ""
    figure: Figure = field(init=False)

    def __post_init__(self) -> None:
        scene = self.replay
        self.slots = service_slots(scene.dots)
        self.layout = layout_of(scene, self.times, self.slots)
        self.figure = Figure(figsize=FIGURE_SIZE, dpi=72)
        flow = self.figure.add_axes(FLOW_AXES)
        flow.set(xlim=(0, 1), ylim=(0, TOP))
        flow.axis("off")
        self.bin_labels = _draw_boxes(flow, scene, self.layout)
        self.dots = [flow.scatter([], [], marker=MARKERS[k % len(MARKERS)], linewidths=0, antialiased=False,
                                  zorder=3) for k in range(max(1, len(scene.producers)))]
        self.clock = flow.text(0.0, TOP, "", fontsize=11, fontweight="bold", va="top")
        flow.text(1.0, TOP, _note(scene, self.title), fontsize=7.5, va="top", ha="right", color="#495057")
        _legend(self.figure, scene, self.layout)
        self._curves()

    def _curves(self) -> None:
        scene, times = self.replay, self.times
        queue_axes = self.figure.add_axes((0.07, 0.08, 0.38, 0.24))
        rate_axes = self.figure.add_axes((0.57, 0.08, 0.38, 0.24))
        self.waiting = waiting_counts(scene.jobs, len(scene.lanes), times)
        self.width = max(1.0, (scene.end - scene.start) / 20)
        self.goodput = goodput(scene.completed_at, times, self.width)
        self.queue_lines = [queue_axes.plot([], [], color=colour(lane, len(scene.lanes)), label=name)[0]
                            for lane, name in enumerate(scene.lanes)]
        (self.rate_line,) = rate_axes.plot([], [], color=OUTCOME_COLOURS["completed"])
        span = (scene.start, max(scene.end, scene.start + 1e-9))
        what = "visible messages" if all(scene.brokered) else "waiting in the queue"
        queue_axes.set(xlim=span, ylim=(0, max(1, int(self.waiting.max())) * 1.1), xlabel="time (s)", ylabel=what)
        rate_axes.set(xlim=span, ylim=(0, max(1.0, float(self.goodput.max())) * 1.1), xlabel="time (s)",
                      ylabel=f"goodput (/s, last {self.width:g}s)")
        if len(scene.lanes) > 1:
            queue_axes.legend(fontsize=7, loc="upper left", frameon=False)
        for axes in (queue_axes, rate_axes):
            axes.tick_params(labelsize=7.5)
            axes.xaxis.label.set_fontsize(8)
            axes.yaxis.label.set_fontsize(8)

    @property
    def moving(self) -> list[Artist]:
        """The artists a frame changes (everything else is drawn once)."""
        return [*self.dots, *self.bin_labels.values(), self.clock, *self.queue_lines, self.rate_line]

    def draw(self, frame: int) -> list[Artist]:
        """Set every moving artist to frame ``frame`` (the clock at ``times[frame]``) and return them."""
        scene, t = self.replay, float(self.times[frame])
        x, y, cell, face, visible = positions(scene, self.layout, self.slots, t)
        area = np.clip(cell * FLOW_WIDTH_INCHES * 72 * 0.78, 1.5, 11.0) ** 2  # points squared
        for producer, artist in enumerate(self.dots):
            mine = visible & (scene.dots.producer == producer) if len(self.dots) > 1 else visible
            artist.set_offsets(np.column_stack([x[mine], y[mine]]) if mine.any() else np.empty((0, 2)))
            artist.set_sizes(area[mine])
            artist.set_facecolor(list(face[mine]))
        counts = departed_counts(scene.jobs, t)
        for code, label in self.bin_labels.items():
            label.set_text(f"{FATES[code].replace('_', ' ')}  {counts.get(FATES[code], 0):,}")
        self.clock.set_text(f"t = {t:.2f} s")
        upto = frame + 1
        for lane, line in enumerate(self.queue_lines):
            line.set_data(self.times[:upto], self.waiting[lane, :upto])
        self.rate_line.set_data(self.times[:upto], self.goodput[:upto])
        return self.moving


def scene_of(result: Result, start: float | None = None, end: float | None = None, *, fps: float = 10.0,
             speed: float | None = None, max_dots: int = MAX_DOTS, replication: int = 0) -> Scene:
    """The scene of one replication of ``result`` over ``[start, end]`` (default: its first 10 s).

    ``fps`` frames per second of video, ``speed`` simulated seconds per second of video (default: real
    time, faster for windows over 15 s), at most ``max_dots`` requests drawn (a uniform sample beyond).
    """
    capacities = tuple(stage.queue.capacity for stage in result.scenario.stage_list)
    chosen = replay(result.runs[replication], start, end, max_dots, capacities=capacities)
    return Scene(chosen, frame_times(chosen.start, chosen.end, fps, speed), fps, result.scenario.name)


def animate(scene: Scene) -> animation.FuncAnimation:
    """The animation of ``scene`` as matplotlib's own (in a notebook: ``HTML(animate(scene).to_jshtml())``)."""
    return animation.FuncAnimation(scene.figure, scene.draw, frames=len(scene.times), interval=1000 / scene.fps,
                                   blit=False, repeat=True)


def snapshot(scene: Scene, t: float) -> Figure:
    """The scene's figure at the frame nearest ``t`` (a still, for a report or a notebook)."""
    scene.draw(int(np.argmin(np.abs(scene.times - t))))
    return scene.figure
