"""The simulator against queueing theory (closed forms in ``sim.theory``).

How the tolerances are set: each check runs R independent replications (own random
streams), each long enough after a warm-up of several relaxation times that the start-up
bias is negligible. The per-replication estimates are i.i.d., so their mean has standard
error s / sqrt(R), and a correct simulator lands within t(0.9995, R-1) standard errors of
the theoretical value with probability 99.9 %. The seeds are fixed, so the tests are
deterministic; the tolerance says how unlucky a seed would have to be. Each check also
asserts that the standard error is small (a few % of the value), so the test is not
vacuous: a simulator off by more than that would fail.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

import sim
from sim.analysis import theory
from sim.engine.records import COMPLETED, EXPIRED, LATE, REJECTED, Columns
from sim.engine.simulation import replication_seeds, simulate
from tests.helpers import make_scenario

Statistic = Callable[[Columns, np.ndarray], float]


def replicate(scenario: sim.Scenario, statistic: Statistic, replications: int) -> np.ndarray:
    """``statistic(columns, measured)`` of each replication; ``measured`` masks arrivals after the warm-up."""
    return replicate_many(scenario, [statistic], replications)[0]


def replicate_many(scenario: sim.Scenario, statistics: list[Statistic], replications: int) -> list[np.ndarray]:
    """Several statistics from the same replications (one simulation per replication)."""
    values: list[list[float]] = [[] for _ in statistics]
    for replication in range(replications):
        records = simulate(scenario, replication_seeds(scenario.seed, replication))
        measured = records.columns.arrival >= scenario.warmup
        for index, statistic in enumerate(statistics):
            values[index].append(statistic(records.columns, measured))
    return [np.asarray(v) for v in values]


def assert_agrees(estimates: np.ndarray, expected: float, max_relative_se: float = 0.05) -> None:
    """Mean of the replications within the 99.9 % t-interval of ``expected``, with a tight enough interval."""
    mean = float(estimates.mean())
    se = float(estimates.std(ddof=1) / np.sqrt(len(estimates)))
    half = float(stats.t.ppf(0.9995, len(estimates) - 1)) * se
    assert se <= max_relative_se * abs(expected), f"too imprecise to test: se {se:.4g} vs {expected:.4g}"
    assert abs(mean - expected) <= half, f"simulated {mean:.5g} +- {half:.3g}, theory {expected:.5g}"


def served(columns: Columns, measured: np.ndarray) -> np.ndarray:
    return measured & ((columns.outcome == COMPLETED) | (columns.outcome == LATE))


def mean_wait(columns: Columns, measured: np.ndarray) -> float:
    keep = served(columns, measured)
    return float(np.mean(columns.start[keep] - columns.arrival[keep]))


def share_waiting(columns: Columns, measured: np.ndarray) -> float:
    keep = served(columns, measured)
    return float(np.mean(columns.start[keep] > columns.arrival[keep]))


def share_blocked(columns: Columns, measured: np.ndarray) -> float:
    return float(np.mean(columns.outcome[measured] == REJECTED))


def poisson_queue(rate: float, service: dict[str, object], servers: int, stop: float, warmup: float,
                  seed: int = 1, timeout: object = None, **changes: object) -> sim.Scenario:
    """An M/G/c scenario: Poisson arrivals until ``stop``; the run drains, so no wait is cut short."""
    producer: dict[str, object] = {"arrivals": {"process": "poisson", "rate": rate, "stop": stop}}
    if timeout is not None:
        producer["timeout"] = timeout
    return make_scenario(
        seed=seed,
        warmup=warmup,
        producers=[producer],
        consumers={"concurrency": servers, "service": service},
        **changes,
    )


EXPONENTIAL_1S = {"dist": "exponential", "mean": "1s"}


@pytest.mark.parametrize(
    ("rho", "stop", "warmup"),
    [(0.5, 20_000, 200), (0.8, 40_000, 1_000), (0.95, 150_000, 10_000)],
)
def test_mm1_mean_wait(rho: float, stop: float, warmup: float) -> None:
    # Relaxation time of M/M/1 is about 1 / (mu (1 - sqrt(rho))^2): 12 s, 90 s and 1,600 s here;
    # the warm-ups are several of those.
    scenario = poisson_queue(rho, EXPONENTIAL_1S, 1, stop, warmup)
    assert_agrees(replicate(scenario, mean_wait, 10), theory.mm1(rho, 1.0).wait)


@pytest.mark.parametrize(
    ("servers", "rho", "arrivals", "wait_precision"),
    # With 200 servers the mean wait is short (37 ms) and noisy relative to its size; the
    # probability of waiting (37 %) is the sharper check there.
    [(3, 0.7, 200_000, 0.05), (3, 0.9, 200_000, 0.05), (20, 0.9, 200_000, 0.05), (200, 0.95, 300_000, 0.08)],
)
def test_mmc_mean_wait_and_probability_of_waiting(servers: int, rho: float, arrivals: int,
                                                  wait_precision: float) -> None:
    rate = rho * servers
    stop = arrivals / rate
    scenario = poisson_queue(rate, EXPONENTIAL_1S, servers, stop, warmup=min(200.0, stop / 10))
    expected = theory.mmc(rate, 1.0, servers)
    waits, shares = replicate_many(scenario, [mean_wait, share_waiting], 10)
    assert_agrees(waits, expected.wait, max_relative_se=wait_precision)
    assert_agrees(shares, expected.p_wait, max_relative_se=0.03)


def test_mmc_wait_tail_follows_erlang_c() -> None:
    servers, rate, t = 3, 2.7, 2.0
    scenario = poisson_queue(rate, EXPONENTIAL_1S, servers, 50_000, 200)

    def beyond(columns: Columns, measured: np.ndarray) -> float:
        keep = served(columns, measured)
        return float(np.mean(columns.start[keep] - columns.arrival[keep] > t))

    assert_agrees(replicate(scenario, beyond, 10), theory.mmc_wait_tail(rate, 1.0, servers, t))


@pytest.mark.parametrize(("servers", "queue_room", "rho"), [(1, 4, 0.9), (2, 3, 1.2), (5, 0, 0.8)])
def test_mmck_blocking_probability(servers: int, queue_room: int, rho: float) -> None:
    # A bounded queue is stable at any load; queue_room 0 is Erlang B (the loss system).
    rate = rho * servers
    scenario = poisson_queue(rate, EXPONENTIAL_1S, servers, 50_000 / rate, 100, queue={"capacity": queue_room})
    expected = theory.mmck(rate, 1.0, servers, servers + queue_room)
    blocked, waits = replicate_many(scenario, [share_blocked, mean_wait], 10)
    assert_agrees(blocked, expected.p_block, max_relative_se=0.03)
    if queue_room:
        assert_agrees(waits, expected.wait, max_relative_se=0.03)


def test_md1_waits_half_as_long_as_mm1() -> None:
    scenario = poisson_queue(0.8, {"dist": "constant", "value": "1s"}, 1, 40_000, 1_000)
    assert_agrees(replicate(scenario, mean_wait, 10), theory.md1(0.8, 1.0).wait)


@pytest.mark.parametrize(
    "service",
    [{"dist": "gamma", "mean": "1s", "cv": 0.5}, {"dist": "lognormal", "mean": "1s", "cv": 1.5},
     {"dist": "uniform", "low": "0.5s", "high": "1.5s"}],
)
def test_mg1_mean_wait_is_pollaczek_khinchine(service: dict[str, object]) -> None:
    scenario = poisson_queue(0.7, service, 1, 60_000, 500)
    distribution = scenario.service_of(scenario.producers[0])
    expected = theory.mg1(0.7, distribution.mean, distribution.variance).wait
    assert_agrees(replicate(scenario, mean_wait, 10), expected)


def test_lifo_has_the_fifo_mean_wait_but_a_larger_variance() -> None:
    # Non-preemptive LIFO in M/M/1 keeps the FIFO mean wait (work conservation, service
    # order independent of service times) but spreads it: its second moment is 1/(1 - rho)
    # times FIFO's. Both runs see the same arrivals and service demands (same seed).
    fifo = poisson_queue(0.8, EXPONENTIAL_1S, 1, 40_000, 1_000)
    lifo = poisson_queue(0.8, EXPONENTIAL_1S, 1, 40_000, 1_000, queue={"discipline": "lifo"})
    assert_agrees(replicate(lifo, mean_wait, 10), theory.mm1(0.8, 1.0).wait)

    def wait_variance(columns: Columns, measured: np.ndarray) -> float:
        keep = served(columns, measured)
        return float(np.var(columns.start[keep] - columns.arrival[keep]))

    fifo_variance = replicate(fifo, wait_variance, 4).mean()
    lifo_variance = replicate(lifo, wait_variance, 4).mean()
    assert lifo_variance > 2.5 * fifo_variance


def test_erlang_a_abandonment_with_exponential_patience() -> None:
    # M/M/c+M: waiting requests give up after an exponential patience. With on_expired:
    # skip, a FIFO request past its deadline is skipped at the head at no cost, so the set of
    # requests served, and their waits, are those of Erlang A.
    servers, rate, patience = 10, 9.5, 2.0
    scenario = poisson_queue(
        rate, EXPONENTIAL_1S, servers, 20_000, 200,
        timeout={"dist": "exponential", "mean": f"{patience}s"},
        queue={"on_expired": "skip"},
    )
    expected = theory.erlang_a(rate, 1.0, servers, 1 / patience)

    def abandoned(columns: Columns, measured: np.ndarray) -> float:
        return float(np.mean(columns.outcome[measured] == EXPIRED))

    abandonment, waits = replicate_many(scenario, [abandoned, mean_wait], 10)
    assert_agrees(abandonment, expected.p_abandon)
    assert_agrees(waits, expected.wait_served)
