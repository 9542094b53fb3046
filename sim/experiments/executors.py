"""Where replications run: in this process, in a local process pool, or on a Dask cluster.

Every executor takes the same :class:`Task` objects and yields the same :class:`RunOutcome`
objects, in the order they finish; the caller puts them back in (point, replication) order,
so the numbers never depend on the executor, the number of workers or the finishing order.
A task ships the validated scenario (pickled: trace and empirical data travel with it), the
seed and the replication index; a worker sends back only the run's summary rows, time series
and latency quantiles, never the per-request columns, to keep the traffic small.

An executor subclass supplies :meth:`Executor.outcomes` (run the tasks, yield outcomes as
they finish, cancel what is left when the caller stops early) and :meth:`Executor.close`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from sim.experiments.cache import code_fingerprint
from sim.experiments.replication import RunOutcome, outcome_of, simulate_run
from sim.model.scenario import ScenarioError
from sim.model.schema import Scenario


class ExecutorError(ScenarioError):
    """An executor that cannot be used (an unreachable cluster, workers with other code); one line."""


@dataclass(frozen=True)
class Task:
    """Replication ``replication`` of ``scenario``.

    ``point`` is a tag the caller matches outcomes with (it comes back as ``RunOutcome.point``);
    ``keep`` asks an in-process executor to keep the full run, with its request records.
    """

    point: int
    replication: int
    seed: int
    scenario: Scenario
    keep: bool = False


def execute(task: Task) -> RunOutcome:
    """Run one task; the function every executor calls, in whatever process it lands."""
    run = simulate_run(task.scenario, task.seed, task.replication)
    return outcome_of(run, task.point, code_fingerprint())


def execute_chunk(tasks: list[Task]) -> list[RunOutcome]:
    """Run several tasks in one go: one round trip to a worker for several runs."""
    return [execute(task) for task in tasks]


MAX_CHUNK = 4
"""At most this many runs travel together (a Ctrl-C loses at most this many per worker)."""


def chunks(tasks: Sequence[Task], workers: int) -> list[list[Task]]:
    """Split tasks into chunks, at least four per worker (so the last ones balance) and at most
    :data:`MAX_CHUNK` runs each. Each task is a round trip through a queue or a scheduler that
    costs a few milliseconds of the coordinating process, which on a small machine shares the
    cores with the workers; chunks amortise it over runs of ~50 ms."""
    size = max(1, min(MAX_CHUNK, len(tasks) // (4 * workers)))
    return [list(tasks[first : first + size]) for first in range(0, len(tasks), size)]


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs tasks somewhere. Use as a context manager so workers are always shut down."""

    description = "executor"
    workers = 1

    def outcomes(self, tasks: Sequence[Task]) -> Iterator[RunOutcome]:
        """Yield an outcome for every task, as each finishes (any order)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers; outstanding tasks are cancelled."""

    def abort(self) -> None:
        """Stop at once (Ctrl-C, SIGTERM): running tasks are abandoned, not waited for."""
        self.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.abort()
        else:
            self.close()


class InProcess(Executor):
    """Run tasks one after the other here.

    Keeps the full run (request records) of the tasks marked ``keep`` (replication 0 of the
    first point, which the results folder shows request by request); the others' records are
    dropped as in any executor.
    ``within`` is called during each run with (task, simulated time, share of the run done), for a
    progress bar; ``phase`` is told when a run's summary starts.
    """

    description = "in-process"

    def __init__(self, within: Callable[[Task, float, float], None] | None = None,
                 phase: Callable[[str], None] | None = None) -> None:
        self.within = within
        self.phase = phase

    def outcomes(self, tasks: Sequence[Task]) -> Iterator[RunOutcome]:
        # The cyclic garbage collector would otherwise rescan every long-lived object (modules,
        # the results of earlier batches) again and again during the runs, which allocate a
        # lot: ~10-20 % of a run's time. Collect once, freeze what is alive, thaw afterwards.
        gc.collect()
        gc.freeze()
        try:
            yield from self._run(tasks)
        finally:
            gc.unfreeze()

    def _run(self, tasks: Sequence[Task]) -> Iterator[RunOutcome]:
        for task in tasks:
            within = self.within
            progress = None if within is None else functools.partial(within, task)
            run = simulate_run(task.scenario, task.seed, task.replication, progress, self.phase)
            yield outcome_of(run, task.point, code_fingerprint(), keep=task.keep)


def _context() -> Any:
    """``forkserver`` where it exists (a fork of a process with threads -- tqdm's monitor, Dask's
    event loop -- can deadlock), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _yield_finished(futures: list[Future[list[RunOutcome]]]) -> Iterator[RunOutcome]:
    try:
        for future in as_completed(futures):
            yield from future.result()
    finally:
        for future in futures:
            future.cancel()


def _start_worker(alive: Connection | None = None) -> None:
    """Pool worker set-up: import the simulator, then freeze what the imports created, so the
    garbage collector does not rescan those objects during every run (~10 % of a run).

    A worker must not outlive the command that started it (killed with SIGKILL, it cannot stop
    its workers): ``alive`` is the read end of a pipe whose only write end the coordinating
    process holds; a thread waits on it and ends the worker the moment it closes. Its parent
    (the forkserver) cannot watch for us: it lives as long as its children do. Ctrl-C in a
    terminal reaches every process of the group; the workers ignore it and the coordinating
    process stops them.
    """
    import sim.experiments.replication  # noqa: F401 - imported for its side effect: everything a run needs

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if alive is not None:
        threading.Thread(target=_exit_with_parent, args=(alive,), name="qsim-parent", daemon=True).start()
    gc.freeze()


def _exit_with_parent(alive: Connection) -> None:
    """Block until the coordinating process is gone (the pipe's write end closes), then exit at once."""
    with contextlib.suppress(EOFError, OSError):
        alive.recv_bytes()
    os._exit(1)


class ProcessPool(Executor):
    """A local pool of ``workers`` processes, started once and reused for every batch of tasks."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ExecutorError(f"--workers: got {workers}; give an integer >= 1")
        self.workers = workers
        self.description = f"process pool of {workers}"
        context = _context()
        self._alive, self._lifeline = context.Pipe(duplex=False)  # read end to the workers, write end kept here
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                                         initargs=(self._alive,))

    def outcomes(self, tasks: Sequence[Task]) -> Iterator[RunOutcome]:
        return _yield_finished([self._pool.submit(execute_chunk, chunk) for chunk in chunks(tasks, self.workers)])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._lifeline.close()
        self._alive.close()

    def abort(self) -> None:
        """Terminate the workers and close the lifeline without waiting for runs: a run can take
        minutes, and an interrupt may have landed anywhere, even inside the pool's own bookkeeping."""
        pool: Any = self._pool  # the pool's internals below are not in its typed interface
        manager, results = pool._executor_manager_thread, pool._result_queue
        restore = _quiet(manager)
        processes = list((pool._processes or {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)
        pool.shutdown(wait=False, cancel_futures=True)
        if manager is not None:
            manager.join(timeout=2)
            if manager.is_alive():
                # A worker killed while sending a result leaves half a message in the result pipe: the
                # manager thread would wait for the rest forever, and Python joins it at exit. The
                # workers' copies of the pipe's write end died with them; closing ours turns the wait
                # into an end of file, which the pool handles as a broken pool.
                writer = getattr(results, "_writer", None)
                if writer is not None:
                    writer.close()
                manager.join(timeout=2)
            if not manager.is_alive():
                restore()
        self._lifeline.close()
        self._alive.close()


def _quiet(manager: threading.Thread | None) -> Callable[[], None]:
    """Silence one known error of a pool's manager thread while it is being torn down; return the undo.

    Tasks cancelled while the interrupt unwound (``_yield_finished``) are still in the pool's table
    when the terminated workers make it "broken", and Python 3.11 then tries to set an exception on
    them: ``InvalidStateError`` and a traceback after the one line qsim prints. The thread ends
    either way; anything else it raises is still reported.
    """
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if args.thread is manager and args.exc_type is InvalidStateError:
            return
        previous(args)

    threading.excepthook = hook

    def restore() -> None:
        if threading.excepthook is hook:
            threading.excepthook = previous

    return restore


class DaskExecutor(Executor):
    """An existing Dask cluster, reached through its scheduler (``tcp://host:8786``).

    Its workers need the same qsim installed: each outcome carries the worker's code
    fingerprint and a mismatch stops the run (other code could give other numbers).
    """

    TIMEOUT = 10.0
    """Seconds to wait for the scheduler before giving up."""

    def __init__(self, address: str, timeout: float | None = None) -> None:
        try:
            from dask import distributed
        except ImportError:
            raise ExecutorError(
                "--dask: dask.distributed is not installed; pip install 'qsim[dask]' (or 'dask[distributed]')"
            ) from None
        self._dask: Any = distributed  # dask is only partly typed: keep it out of strict checking
        try:
            self._client: Any = self._dask.Client(address, timeout=timeout or self.TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            raise ExecutorError(
                f"--dask {address}: cannot reach the scheduler ({type(error).__name__}: {str(error)[:120]}); "
                "check the address (tcp://host:8786) and that `dask scheduler` is running"
            ) from None
        threads = self._client.nthreads()
        self.workers = max(1, sum(threads.values()))
        self.description = f"Dask cluster at {address} ({len(threads)} workers, {self.workers} threads)"
        self.address = address

    def outcomes(self, tasks: Sequence[Task]) -> Iterator[RunOutcome]:
        finished = self._dask.as_completed
        futures = self._client.map(execute_chunk, chunks(tasks, self.workers), pure=False)
        expected = code_fingerprint()
        try:
            for future in finished(futures, loop=self._client.loop):  # this client, not a global default
                for outcome in future.result():
                    if outcome.code != expected:
                        raise ExecutorError(
                            f"--dask {self.address}: the workers run other qsim code (fingerprint {outcome.code}, "
                            f"here {expected}); install this qsim on them"
                        )
                    yield outcome
        finally:
            self._client.cancel(futures)

    def close(self) -> None:
        self._client.close()


def make_executor(workers: int | None, dask: str | None, runs: int) -> Executor:
    """The executor a command asked for: Dask if given an address, else a pool of ``workers``
    processes (``None`` = all cores), in-process when one worker or one run would do."""
    if dask is not None:
        return DaskExecutor(dask)
    if workers is not None and workers < 1:
        raise ExecutorError(f"--workers: got {workers}; give an integer >= 1")
    count = cpu_count() if workers is None else workers
    count = min(count, runs)
    if count <= 1:
        return InProcess()
    return ProcessPool(count)
