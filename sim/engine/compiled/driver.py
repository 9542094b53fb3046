"""The compiled engine's driver: sets a run up, feeds the kernel, and collects its records.

Random numbers are drawn here, in NumPy, from the same streams and in the same blocks as the
SimPy engine draws them (a producer's arrivals, service demands and patience; the stage's
uniforms for early drops), so both engines see the same numbers. Job rows live in a ring in the
kernel; when it fills, the rows of jobs that have left (below the oldest job still waiting or in
service) are copied out, and the ring doubles only when none can be.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np

from sim.engine.compiled import layout as at
from sim.engine.compiled.jit import compiling_note
from sim.engine.compiled.kernel import advance, live_floor, start_producer
from sim.engine.compiled.tallying import closed
from sim.engine.records import Columns, RunRecords
from sim.engine.sample import Reservoir
from sim.engine.streams import ARRIVALS, PATIENCE, SAMPLE_STREAM, SERVICE, STAGE_STREAMS, stream
from sim.engine.tally import (
    OFFERED,
    OUTCOME_BASE,
    OVERDUE,
    Tally,
    fitted,
    new_tally,
)
from sim.engine.tally import WARMUP as TALLY_WARMUP
from sim.model.arrivals import BLOCK
from sim.model.distributions import SAMPLER_BLOCK
from sim.model.keeping import requests_kept
from sim.model.policy_specs import CodelSpec, FailAtScaleSpec, ProportionalSpec, RedSpec
from sim.model.schema import ProducerSpec, Scenario

RING = 1 << 16
"""Job rows the ring starts with (it doubles when the jobs in the system span more)."""
EVENT_BUDGET = 1 << 20
"""Events per kernel call at most: a progress callback hears about the clock this often."""
DISCIPLINES = {"fifo": at.FIFO, "lifo": at.LIFO, "priority": at.PRIORITY, "adaptive-lifo": at.ADAPTIVE_LIFO}
LEVELS = 10


class _Feed:
    """One producer's blocks: arrival times, service demands and patience, drawn as the SimPy engine draws them."""

    def __init__(self, index: int, spec: ProducerSpec, scenario: Scenario, seeds: np.random.SeedSequence) -> None:
        self.blocks: Iterator[np.ndarray] = spec.arrivals.build().blocks(stream(seeds, index, ARRIVALS))
        self.service = scenario.service_at(0, spec)
        self.service_rng = stream(seeds, index, SERVICE, 0)
        self.timeout = spec.timeout
        self.patience_rng = stream(seeds, index, PATIENCE)

    def load(self, arrays: at.Arrays, producer: int) -> bool:
        """Put the next block into the producer's rows; False (and length 0) when it is done."""
        block = next(self.blocks, None)
        if block is None or len(block) == 0:
            arrays.block_length[producer] = 0
            return False
        size = len(block)
        arrays.arrival_times[producer, :size] = block
        arrays.demands[producer, :size] = self.service.sample(self.service_rng, size)
        if self.timeout is None:
            arrays.patience[producer, :size] = math.inf
        elif isinstance(self.timeout, float):
            arrays.patience[producer, :size] = self.timeout
        else:
            arrays.patience[producer, :size] = self.timeout.build().sample(self.patience_rng, size)
        arrays.block_length[producer] = size
        return True


def _parameters(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    stage = scenario.stage_list[0]
    queue = stage.queue
    ip = np.zeros(at.INT_PARAMS, dtype=np.int64)
    fp = np.zeros(at.FLOAT_PARAMS, dtype=np.float64)
    ip[at.DISCIPLINE] = DISCIPLINES[queue.discipline]
    ip[at.LIMIT] = -1 if queue.capacity is None else queue.capacity
    ip[at.DROP_OLDEST] = queue.overflow == "drop-oldest"
    ip[at.SKIP_EXPIRED] = queue.on_expired == "skip"
    ip[at.PRODUCERS] = len(scenario.producers)
    ip[at.CONCURRENCY] = stage.consumers.concurrency
    ip[at.HAS_UNTIL] = scenario.until is not None
    fp[at.UNTIL] = scenario.until if scenario.until is not None else math.inf
    switch = queue.switch
    ip[at.ADAPT_BY_LENGTH] = switch.length is not None
    ip[at.ADAPT_LENGTH] = switch.length or 0
    fp[at.ADAPT_WAIT] = switch.wait if switch.wait is not None else 0.0
    ip[at.EVENT_BUDGET] = EVENT_BUDGET
    ip[at.SEVERAL_PRODUCERS] = len(scenario.producers) > 1
    ip[at.STREAMING] = requests_kept(scenario).kept is not None
    aqm = queue.aqm
    if isinstance(aqm, RedSpec):
        ip[at.AQM] = at.RED
        fp[at.RED_MIN], fp[at.RED_MAX], fp[at.RED_MAX_P], fp[at.RED_WEIGHT] = aqm.min, aqm.max, aqm.max_p, aqm.weight
    elif isinstance(aqm, ProportionalSpec):
        ip[at.AQM] = at.PROPORTIONAL
        ip[at.AQM_CAPACITY] = queue.capacity or 0
    elif isinstance(aqm, CodelSpec | FailAtScaleSpec):
        ip[at.AQM] = at.CODEL if isinstance(aqm, CodelSpec) else at.FAIL_AT_SCALE
        fp[at.HEAD_TARGET], fp[at.HEAD_INTERVAL] = aqm.target, aqm.interval
    return ip, fp


def _arrays(scenario: Scenario) -> at.Arrays:
    ip, fp = _parameters(scenario)
    producers, concurrency = int(ip[at.PRODUCERS]), int(ip[at.CONCURRENCY])
    queue = scenario.stage_list[0].queue
    levels = LEVELS if queue.discipline == "priority" else 1
    width = 1024 if queue.capacity is None else queue.capacity + 1
    istate = np.zeros(at.INT_STATE, dtype=np.int64)
    istate[at.FREE_TOP] = concurrency
    istate[at.PENDING] = -1
    istate[at.RED_COUNT] = -1
    istate[at.UNIFORM_AT] = SAMPLER_BLOCK  # empty: the first early-drop decision asks for a block
    fstate = np.zeros(at.FLOAT_STATE, dtype=np.float64)
    fstate[at.CODEL_FIRST_ABOVE] = -1.0
    aqm = queue.aqm
    names = [p.name for p in scenario.producers]
    scope = [1] * producers
    if isinstance(aqm, RedSpec | ProportionalSpec) and aqm.classes is not None:
        scope = [int(name in aqm.classes) for name in names]
    events = producers + concurrency
    return at.Arrays(
        ip=ip, fp=fp, istate=istate, fstate=fstate,
        heap=np.zeros(events, dtype=np.int64), heap_time=np.zeros(events), heap_id=np.zeros(events, dtype=np.int64),
        jf=np.zeros((5, RING)), ji=np.zeros((3, RING), dtype=np.int8),
        q=np.zeros((levels, width), dtype=np.int64), q_head=np.zeros(levels, dtype=np.int64),
        q_size=np.zeros(levels, dtype=np.int64),
        slot_job=np.full(concurrency, -1, dtype=np.int64),
        free=np.arange(concurrency - 1, -1, -1, dtype=np.int64),  # slot 0 is handed out first
        arrival_times=np.zeros((producers, BLOCK)), demands=np.zeros((producers, BLOCK)),
        patience=np.zeros((producers, BLOCK)), block_length=np.zeros(producers, dtype=np.int64),
        block_position=np.zeros(producers, dtype=np.int64),
        level=np.array([p.priority or 0 for p in scenario.producers], dtype=np.int64),
        early_scope=np.array(scope, dtype=np.int64), uniforms=np.zeros(SAMPLER_BLOCK), tally=_tally(scenario),
    )  # fmt: skip


def _tally(scenario: Scenario) -> Tally:
    """The streaming statistics' accumulators (a minimal, unused one when every request is kept)."""
    if requests_kept(scenario).kept is None:
        return new_tally(0, 0, 0.0, 1.0)
    producers = len(scenario.producers) if len(scenario.producers) > 1 else 0
    warmup = 0.0 if scenario.warmup == "auto" else float(scenario.warmup)
    return new_tally(producers, 0, warmup, scenario.report.bucket)


FLOAT_COLUMNS = ("arrival", "deadline", "service", "start", "finish")
SMALL_COLUMNS = ("outcome", "reason", "producer")


class _Rows:
    """Final job rows copied out of the ring, in job order: all of them, none, or a uniform sample."""

    def __init__(self, kept: int | None, rng: np.random.Generator) -> None:
        self.kept = kept
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in (*FLOAT_COLUMNS, *SMALL_COLUMNS, "id")}
        self.reservoir = Reservoir(kept, rng) if kept else None

    def take(self, arrays: at.Arrays, first: int, last: int) -> None:
        if last <= first or self.kept == 0:
            return
        ids = np.arange(first, last)
        if self.reservoir is not None:
            ids = self.reservoir.offer(first, last)
        rows = ids & (arrays.jf.shape[1] - 1)
        chunk = {name: arrays.jf[index, rows] for index, name in enumerate(FLOAT_COLUMNS)}
        chunk.update({name: arrays.ji[index, rows] for index, name in enumerate(SMALL_COLUMNS)})
        chunk["id"] = ids
        if self.reservoir is not None:
            self.reservoir.store(ids, chunk)
            return
        for name, values in chunk.items():
            self.parts[name].append(values)

    def columns(self) -> Columns:
        if self.reservoir is not None:
            found = self.reservoir.rows()
        else:
            found = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in self.parts.items()}
        count = len(found["arrival"])
        small = {name: found[name].astype(np.int8) for name in SMALL_COLUMNS}
        return Columns(
            producer=small["producer"], arrival=found["arrival"], deadline=found["deadline"], service=found["service"],
            start=found["start"], finish=found["finish"], outcome=small["outcome"], reason=small["reason"],
            stage=np.zeros(count, dtype=np.int8), request=found["id"].astype(np.int64),
        )  # fmt: skip


def _make_room(arrays: at.Arrays, rows: _Rows) -> at.Arrays:
    """Copy out the rows of jobs that have left; double the ring if the jobs still in the system fill half of it."""
    emitted, jobs = int(arrays.istate[at.EMITTED]), int(arrays.istate[at.JOBS])
    floor = live_floor(arrays)
    if floor > emitted:
        rows.take(arrays, emitted, floor)
        arrays.istate[at.EMITTED] = emitted = floor
    width = arrays.jf.shape[1]
    if jobs - emitted <= width // 2:
        return arrays
    ids = np.arange(emitted, jobs)
    jf, ji = np.zeros((5, 2 * width)), np.zeros((3, 2 * width), dtype=np.int8)
    jf[:, ids & (2 * width - 1)] = arrays.jf[:, ids & (width - 1)]
    ji[:, ids & (2 * width - 1)] = arrays.ji[:, ids & (width - 1)]
    return arrays._replace(jf=jf, ji=ji)


def _widen_or_grow(arrays: at.Arrays) -> at.Arrays:
    """Make the time series hold the next event: a wider bucket past MAX_BUCKETS, else more buckets."""
    return arrays._replace(tally=fitted(arrays.tally, float(arrays.heap_time[0])))


def _deeper_waiting_room(arrays: at.Arrays) -> at.Arrays:
    """Double the queue's rows, unrolling each ring so that it starts at column 0."""
    levels, width = arrays.q.shape
    q = np.zeros((levels, 2 * width), dtype=np.int64)
    for level in range(levels):
        size = int(arrays.q_size[level])
        q[level, :size] = arrays.q[level, (arrays.q_head[level] + np.arange(size)) % width]
    arrays.q_head[:] = 0
    return arrays._replace(q=q)


def run_kernel(scenario: Scenario, seeds: np.random.SeedSequence,
               clock: Callable[[float, float], None] | None = None) -> tuple[at.Arrays, Columns]:
    """Run the kernel to the end; return its final state and the kept rows (every job's, a sample, or none)."""
    arrays = _arrays(scenario)
    note = compiling_note(advance)  # a first run on this machine compiles for a minute: say so
    feeds = [_Feed(index, producer, scenario, seeds) for index, producer in enumerate(scenario.producers)]
    for index, feed in enumerate(feeds):
        if feed.load(arrays, index):
            start_producer(arrays, index)
    uniforms = stream(seeds, STAGE_STREAMS + 0)
    horizon = max(producer.arrivals.build().horizon for producer in scenario.producers)
    rows = _Rows(requests_kept(scenario).kept, stream(seeds, SAMPLE_STREAM))
    next_report = EVENT_BUDGET
    while True:
        status = advance(arrays)
        if note is not None:
            note.cancel()
            note = None
        if clock is not None and arrays.istate[at.EVENTS] >= next_report:
            now = float(arrays.fstate[at.NOW])
            clock(now, _share_done(scenario, arrays, now, horizon))
            next_report = int(arrays.istate[at.EVENTS]) + EVENT_BUDGET
        if status == at.DONE:
            break
        if status == at.NEED_BLOCK:
            producer = int(arrays.istate[at.PENDING])
            feeds[producer].load(arrays, producer)
        elif status == at.NEED_UNIFORMS:
            arrays.uniforms[:] = uniforms.uniform(0.0, 1.0, SAMPLER_BLOCK)
            arrays.istate[at.UNIFORM_AT] = 0
        elif status == at.RING_FULL:
            arrays = _make_room(arrays, rows)
        elif status == at.QUEUE_FULL:
            arrays = _deeper_waiting_room(arrays)
        elif status == at.SERIES_FULL:
            arrays = _widen_or_grow(arrays)
    if arrays.ip[at.STREAMING] == 1:
        arrays = _close(arrays, _end_time(scenario, arrays))
    rows.take(arrays, int(arrays.istate[at.EMITTED]), int(arrays.istate[at.JOBS]))
    return arrays, rows.columns()


def _share_done(scenario: Scenario, arrays: at.Arrays, now: float, horizon: float) -> float:
    """The share of the run done, as the SimPy engine reports it: of ``until``, else arrivals' share of
    their horizon x (1 + share of the requests so far that have left) / 2."""
    if scenario.until is not None:
        return min(1.0, now / scenario.until)
    arrived = min(1.0, now / horizon) if 0 < horizon < math.inf else 1.0
    jobs = int(arrays.istate[at.JOBS])
    in_system = int(arrays.istate[at.QUEUED]) + int(arrays.ip[at.CONCURRENCY] - arrays.istate[at.FREE_TOP])
    resolved = 1.0 - in_system / jobs if jobs else 1.0
    return arrived * (1 + resolved) / 2


def _end_time(scenario: Scenario, arrays: at.Arrays) -> float:
    """``until``, else the last event's time (every arrival and every finish is an event)."""
    if scenario.until is not None:
        return float(scenario.until)
    return float(arrays.fstate[at.NOW]) if arrays.istate[at.JOBS] else 0.0


def _close(arrays: at.Arrays, end: float) -> at.Arrays:
    """Finish the streaming statistics at ``end``: levels, maxima, buckets, the requests still in the system."""
    arrays = arrays._replace(tally=closed(arrays.tally, end))
    _count_live(arrays, end)  # counts only: the buckets' width does not matter to it
    return arrays


def _count_live(arrays: at.Arrays, end: float) -> None:
    """Requests still waiting or in service at the end: offered, in the system, overdue if past their deadline."""
    ids = np.arange(int(arrays.istate[at.EMITTED]), int(arrays.istate[at.JOBS]))
    rows = ids & (arrays.jf.shape[1] - 1)
    live = (arrays.ji[at.OUTCOME, rows] == 0) & (arrays.jf[at.ARRIVAL, rows] >= arrays.tally.scalars[TALLY_WARMUP])
    overdue = live & (arrays.jf[at.DEADLINE, rows] < end)
    producers = arrays.ji[at.PRODUCER, rows].astype(np.int64)
    counts = arrays.tally.counts
    views = [(0, np.ones(len(rows), dtype=bool))]
    if counts.shape[0] > 1:
        views += [(producer + 1, producers == producer) for producer in range(counts.shape[0] - 1)]
    for view, mine in views:
        here = int(np.count_nonzero(live & mine))
        counts[view, OFFERED] += here
        counts[view, OUTCOME_BASE] += here  # outcome 0: in the system
        counts[view, OVERDUE] += int(np.count_nonzero(overdue & mine))


def simulate_compiled(scenario: Scenario, seeds: np.random.SeedSequence,
                      clock: Callable[[float, float], None] | None = None) -> RunRecords:
    """Run a supported single-stage scenario with the compiled engine; the same records as the SimPy engine."""
    wall_start = time.perf_counter()
    arrays, columns = run_kernel(scenario, seeds, clock)
    concurrency = int(arrays.ip[at.CONCURRENCY])
    streaming = arrays.ip[at.STREAMING] == 1
    if scenario.until is not None or streaming:
        end_time = _end_time(scenario, arrays)
    elif len(columns):
        end_time = float(max(np.nanmax(columns.arrival), np.nanmax(columns.finish, initial=0.0), 0.0))
    else:
        end_time = 0.0
    spec = scenario.stage_list[0]
    return RunRecords(
        columns=columns, jobs=columns, end_time=end_time, queued_at_end=int(arrays.istate[at.QUEUED]),
        busy_at_end=concurrency - int(arrays.istate[at.FREE_TOP]), concurrency=concurrency,
        wall_time=time.perf_counter() - wall_start, stage_names=(spec.name,), stage_concurrency=(concurrency,),
        environments=(np.column_stack([np.zeros(concurrency), np.full(concurrency, math.nan)]),), stage_priced=(False,),
        stage_memory_gb=(spec.consumers.memory_gb,), invocations=(None,), tally=arrays.tally if streaming else None,
    )  # fmt: skip
