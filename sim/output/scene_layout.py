"""Where the dots of an animation are drawn: each lane's queue and consumers, each fate's bin.

The flow panel is one unit wide and :data:`TOP` high (one unit as long across as up, so the
grids are square). Every box is sized once, for the most dots it holds over the whole window,
so nothing moves but the dots while the animation plays; queues and consumers share one dot
size, the largest at which the fullest of them still fits (a bin may hold smaller dots).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.output.plots import OUTCOME_COLOURS
from sim.output.replay import DEPARTED, FATES, HANDED_ON, SERVING, WAITING, Replay, overdue, phases

WAITING_COLOUR, SERVING_COLOUR, GIVEN_UP_COLOUR = "#8ab6d6", "#1d3557", "#e9c46a"
FATE_COLOURS = {**OUTCOME_COLOURS, "retried": "#adb5bd", "handed_on": "#ffffff"}
SLOT_OUTLINES = 60
"""Consumers drawn as empty slots when a lane has at most this many (and every request is shown)."""
QUEUE_X, SERVICE_X, BINS_X = (0.01, 0.50), (0.53, 0.74), (0.78, 0.99)
LANE_NAMES = 0.10
FIGURE_SIZE = (9.0, 5.4)
FLOW_AXES = (0.01, 0.42, 0.98, 0.56)
FLOW_WIDTH_INCHES = FIGURE_SIZE[0] * FLOW_AXES[2]
TOP = FIGURE_SIZE[1] * FLOW_AXES[3] / FLOW_WIDTH_INCHES
"""The flow panel's height in its own units (its width is 1): one unit is as long across as up."""


MAX_STEP = 0.032
"""The largest cell of a grid (flow-panel units): a queue of 5 is a short row, not five giant dots."""


@dataclass(frozen=True)
class Box:
    """A rectangle of the flow panel holding a grid of dots: a queue fills it from the right (its front),
    consumers from the centre, a bin from the top left."""

    x0: float
    x1: float
    y0: float
    y1: float
    capacity: int
    align: str = "bin"
    max_step: float = MAX_STEP

    @property
    def grid(self) -> tuple[int, int, float]:
        """Columns, rows and spacing of a grid of ``capacity`` square cells that fits the box."""
        width, height = self.x1 - self.x0, self.y1 - self.y0
        if self.capacity * min(self.max_step, height) <= width:
            return self.capacity, 1, min(self.max_step, height)
        columns = max(1, math.ceil(math.sqrt(self.capacity * width / height)))
        rows = max(1, math.ceil(self.capacity / columns))
        step = min(width / columns, height / rows)
        if step > self.max_step:  # fewer columns of the smaller cells, filled from the front
            columns = max(1, math.floor(width / self.max_step))
            rows = max(1, math.ceil(self.capacity / columns))
            step = self.max_step
        return columns, rows, step

    def cells(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centres of cells ``index``; a queue's cell 0 is at the front (right), the next ones behind it,
        row by row when the queue is short, column by column when it fills the box."""
        columns, rows, step = self.grid
        top = self.y1 if self.align == "bin" else (self.y0 + self.y1 + rows * step) / 2
        if self.align == "queue":
            column, row = (index, index * 0) if rows == 1 else (index // rows, index % rows)
            x = self.x1 - (column + 0.5) * step
        else:
            column, row = index % columns, index // columns
            left = self.x0 if self.align == "bin" else (self.x0 + self.x1 - columns * step) / 2
            x = left + (column + 0.5) * step
        return x, top - (row + 0.5) * step

    def fitted(self, pad: float = 0.012) -> Box:
        """The box shrunk around its grid (kept in place: a queue at its right edge, consumers centred)."""
        columns, rows, step = self.grid
        height = min(self.y1 - self.y0, rows * step + 2 * pad)
        width = min(self.x1 - self.x0, max(columns * step + 2 * pad, 0.08))
        middle = (self.y0 + self.y1) / 2
        y0, y1 = middle - height / 2, middle + height / 2
        if self.align == "queue":
            return Box(self.x1 - width, self.x1, y0, y1, self.capacity, self.align, self.max_step)
        centre = (self.x0 + self.x1) / 2
        return Box(centre - width / 2, centre + width / 2, y0, y1, self.capacity, self.align, self.max_step)


@dataclass
class Layout:
    """Where each lane's queue and consumers and each fate's bin are, and which hold outlined slots."""

    queues: list[Box]
    services: list[Box]
    bins: dict[int, Box]
    queue_slots: list[bool] = field(default_factory=list)
    service_slots: list[bool] = field(default_factory=list)

    @property
    def spacing(self) -> float:
        """The cell of the queues and consumers (a bin's cells may be smaller)."""
        return min(box.grid[2] for box in [*self.queues, *self.services])


def occupancy(scene: Replay, times: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lane the most dots ever waiting and the slots used, and per fate the dots departed by the end."""
    dots, lanes = scene.dots, len(scene.lanes)
    most_waiting = np.zeros(lanes, dtype=np.int64)
    for t in times:
        waiting = phases(dots, t) == WAITING
        most_waiting = np.maximum(most_waiting, np.bincount(dots.lane[waiting], minlength=lanes))
    used = np.ones(lanes, dtype=np.int64)
    for lane in range(lanes):
        served = slots[dots.lane == lane]
        if len(served) and served.max() >= 0:
            used[lane] = served.max() + 1
    final = phases(dots, times[-1]) == DEPARTED
    fates = np.bincount(dots.fate[final & (dots.fate != HANDED_ON)], minlength=len(FATES))
    return most_waiting, used, fates


def layout_of(scene: Replay, times: np.ndarray, slots: np.ndarray) -> Layout:
    """Boxes sized for the most dots each ever holds over the frames (no grid changes while playing), with
    one dot size for all: the largest at which the fullest box still holds its dots."""
    most_waiting, used, fates = occupancy(scene, times, slots)
    shown = [code for code in range(len(FATES)) if fates[code]] or [FATES.index("completed")]
    usable = TOP * 0.86
    height = usable / len(scene.lanes)
    queue_slots, service_slots = [], []
    raw: list[Box] = []
    for lane in range(len(scene.lanes)):
        top, bottom = usable - lane * height - 0.015, usable - (lane + 1) * height + 0.02
        bounded = scene.capacities[lane] if lane < len(scene.capacities) else None
        queue_slots.append(not scene.sampled and bounded is not None and 0 < bounded <= SLOT_OUTLINES)
        service_slots.append(not scene.sampled and scene.concurrency[lane] <= SLOT_OUTLINES)
        waiting = bounded if queue_slots[-1] and bounded is not None else max(1, int(most_waiting[lane]))
        left = QUEUE_X[0] if len(scene.lanes) == 1 else LANE_NAMES  # room for the stages' names
        raw.append(Box(left, QUEUE_X[1], bottom, top, waiting, "queue"))
        raw.append(Box(*SERVICE_X, bottom, top, scene.concurrency[lane] if service_slots[-1] else int(used[lane]),
                       "centre"))
    step = usable / len(shown)
    raw += [Box(*BINS_X, usable - (k + 1) * step + 0.003, usable - k * step - 0.015, max(1, int(fates[code])))
            for k, code in enumerate(shown)]
    common = min(box.grid[2] for box in raw if box.align != "bin")  # bins may hold smaller dots
    boxes = [Box(b.x0, b.x1, b.y0, b.y1, b.capacity, b.align, common) for b in raw]
    boxes = [box if box.align == "bin" else box.fitted() for box in boxes]
    lanes = len(scene.lanes)
    return Layout(boxes[0:2 * lanes:2], boxes[1:2 * lanes:2], dict(zip(shown, boxes[2 * lanes:], strict=True)),
                  queue_slots, service_slots)


def positions(scene: Replay, layout: Layout, slots: np.ndarray, t: float) -> tuple[np.ndarray, ...]:
    """x, y, cell size, face colour and visibility of every dot at ``t``."""
    dots = scene.dots
    phase = phases(dots, t)
    gone = overdue(dots, t)
    x, y = np.full(len(dots), np.nan), np.full(len(dots), np.nan)
    cell = np.full(len(dots), layout.spacing)
    face = np.full(len(dots), WAITING_COLOUR, dtype=object)
    for lane, (queue, service) in enumerate(zip(layout.queues, layout.services, strict=True)):
        waiting = np.flatnonzero((phase == WAITING) & (dots.lane == lane))  # arrival order: the oldest first
        x[waiting], y[waiting] = queue.cells(np.arange(len(waiting)))
        serving = np.flatnonzero((phase == SERVING) & (dots.lane == lane))
        x[serving], y[serving] = service.cells(slots[serving])
        face[serving] = SERVING_COLOUR
    face[gone] = GIVEN_UP_COLOUR
    departed = phase == DEPARTED
    for code, box in layout.bins.items():
        mine = np.flatnonzero(departed & (dots.fate == code))
        mine = mine[np.argsort(dots.finish[mine], kind="stable")]
        x[mine], y[mine] = box.cells(np.arange(len(mine)))
        cell[mine] = box.grid[2]
        face[mine] = FATE_COLOURS[FATES[code]]
    return x, y, cell, face, ~np.isnan(x)
