"""The benchmark's models, each written three ways: as a qsim scenario, in idiomatic SimPy, in Ciw.

Why a module of its own: this is the part a reader checks for fairness (is each peer used
the way its own documentation teaches? do all three simulate the same thing?), so it is
kept apart from the measuring and reporting in ``peers.py``. Each ``run_*`` function imports
its simulator itself, so a child process loads only the library it measures, and times
only the work that produces the answer.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

SEED = 42
"""One seed for every simulator and model, so a re-run draws the same numbers."""

QUICK_DIVISOR = 10

Process = Generator[Any, Any, None]
"""A SimPy process body (SimPy itself is imported only by the child that runs it)."""


@dataclass(frozen=True)
class Model:
    """One queueing model, described once and translated into each simulator's own terms.

    Arrivals are Poisson at ``rate`` when it is set, else ``requests`` arrivals uniform at
    random over ``window`` seconds (a burst). Service is exponential with ``service_mean``,
    or lognormal with that real mean and log-space standard deviation ``sigma``. A request
    still waiting when ``patience`` has passed is skipped, unserved, at the head of the queue.
    """

    key: str
    title: str
    servers: int
    requests: int
    ciw_requests: int
    service_mean: float
    rate: float | None = None
    window: float = 0.0
    sigma: float | None = None
    patience: float = math.inf
    scenario: str | None = None
    """A bundled scenario file that only qsim can run (SQS + Lambda semantics have no peer model)."""

    @property
    def log_mean(self) -> float:
        """The lognormal's log-space mean: peers take (mu, sigma), qsim takes the real mean."""
        assert self.sigma is not None
        return math.log(self.service_mean) - self.sigma**2 / 2

    def theory_wait(self) -> float | None:
        """The Erlang C mean wait for the M/M/c models; None when there is no closed form."""
        if self.rate is None or self.sigma is not None or math.isfinite(self.patience):
            return None
        from sim.analysis.theory import mmc

        return mmc(self.rate, 1 / self.service_mean, self.servers).wait


def models(quick: bool) -> dict[str, Model]:
    """The issue's models; ``quick`` has 10x fewer requests (and consumers in the burst)."""
    d = QUICK_DIVISOR if quick else 1
    burst, consumers = 20_000 // d, 2_000 // d
    sqs = Model("sqs", f"SQS + Lambda burst, {burst:,} messages (scenarios/sqs-lambda-burst.yaml)", consumers, burst,
                0, 0.5, window=1.0, sigma=0.5, scenario="sqs-lambda-burst")
    return {sqs.key: sqs} | {
        m.key: m
        for m in (
            Model("mm1", "M/M/1, rho 0.9", 1, 1_000_000 // d, 1_000_000 // d, 1.0, rate=0.9),
            Model("mm2000", "M/M/2000, rho 0.9", 2_000, 1_000_000 // d, 200_000 // d, 1.0, rate=1_800.0),
            Model(
                "burst",
                f"burst {burst:,} in 1 s, {consumers:,} consumers, 3 s deadline",
                consumers, burst, burst, 0.5, window=1.0, sigma=0.5, patience=3.0,
            ),
        )
    }  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """What one simulator says about one model, and how long it took to say it."""

    requests: int
    """Requests that left the system (served or expired): the numerator of requests/s."""
    wall: float
    mean_wait: float
    """Mean time from arrival to start of service, over served requests."""
    expired_share: float
    engine: float | None = None
    """qsim only: the part of ``wall`` spent in the event loop (the rest is summarising)."""


def arrival_gaps(model: Model, rng: random.Random) -> Iterator[float]:
    """Times between arrivals (the first from 0), drawn one by one as the peers' own examples do."""
    if model.rate is not None:
        rate = model.rate
        return (rng.expovariate(rate) for _ in range(model.requests))
    times = sorted(rng.uniform(0.0, model.window) for _ in range(model.requests))
    return (b - a for a, b in pairwise([0.0, *times]))


def service_sampler(model: Model, rng: random.Random) -> Callable[[], float]:
    """One service time per call, drawn when service starts, as SimPy's examples do."""
    if model.sigma is None:
        rate = 1 / model.service_mean
        return lambda: rng.expovariate(rate)
    mu, sigma = model.log_mean, model.sigma
    return lambda: rng.lognormvariate(mu, sigma)


def qsim_scenario(model: Model) -> dict[str, Any]:
    """The model as a qsim scenario file would say it."""
    if model.rate is None:
        arrivals: dict[str, Any] = {"process": "burst", "count": model.requests, "over": model.window}
    else:
        arrivals = {"process": "poisson", "rate": model.rate, "count": model.requests}
    if model.sigma is None:
        service: dict[str, Any] = {"dist": "exponential", "mean": model.service_mean}
    else:
        service = {"dist": "lognormal", "mean": model.service_mean, "sigma": model.sigma}
    producer: dict[str, Any] = {"name": "clients", "arrivals": arrivals}
    if math.isfinite(model.patience):
        producer["timeout"] = model.patience
    return {
        "name": model.key,
        "seed": SEED,
        "producers": [producer],
        "queue": {"discipline": "fifo", "on_expired": "skip"},
        "consumers": {"concurrency": model.servers, "service": service},
    }


def run_qsim(model: Model) -> Answer:
    """The full ``sim.run``: engine plus summary and time series, as a user gets it (no files)."""
    import sim

    if model.scenario is not None:
        from pathlib import Path

        path = Path(__file__).resolve().parents[1] / "scenarios" / f"{model.scenario}.yaml"
        overrides = {"producers.0.arrivals.count": model.requests, "consumers.concurrency": model.servers}
        scenario = sim.load_scenario(path, overrides)
    else:
        scenario = sim.scenario_from_dict(qsim_scenario(model))
    start = time.perf_counter()
    result = sim.run(scenario)
    wall = time.perf_counter() - start
    row = result.summary.iloc[0]
    offered = int(row["offered"])
    engine = result.runs[0].records.wall_time
    return Answer(offered, wall, float(row["wait_mean"]), int(row["expired"]) / offered, engine)


@dataclass(slots=True)
class Tally:
    """Running sums, not the per-request lists SimPy's examples keep: if anything this favours SimPy."""

    served: int = 0
    expired: int = 0
    wait: float = 0.0


def simpy_request(env: Any, servers: Any, deadline: float, service: Callable[[], float], tally: Tally) -> Process:
    """One request's life, the way SimPy's documentation writes a customer.

    "Skipped at the head": the request always waits for a server, and only when it gets one
    does it check its deadline; if that has passed it releases the server at once, unserved
    (leaving the ``with`` block releases it). SimPy's bank example reneges instead with
    ``yield request | env.timeout(patience)``: in FIFO that serves exactly the same requests at
    the same times (an expired request takes no server time either way), but costs one more
    event per request and removes the request at its deadline, not at the head.
    """
    arrival = env.now
    with servers.request() as request:
        yield request
        if env.now > deadline:
            tally.expired += 1
            return
        tally.served += 1
        tally.wait += env.now - arrival
        yield env.timeout(service())


def simpy_source(env: Any, servers: Any, model: Model, rng: random.Random, tally: Tally) -> Process:
    """Start one process per arriving request."""
    service = service_sampler(model, rng)
    for gap in arrival_gaps(model, rng):
        yield env.timeout(gap)
        env.process(simpy_request(env, servers, env.now + model.patience, service, tally))


def run_simpy(model: Model) -> Answer:
    """Idiomatic SimPy: a ``Resource`` with one slot per consumer and one process per request."""
    import simpy

    tally = Tally()
    start = time.perf_counter()
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=model.servers)
    env.process(simpy_source(env, servers, model, random.Random(SEED), tally))
    env.run()
    wall = time.perf_counter() - start
    return Answer(model.requests, wall, tally.wait / tally.served, tally.expired / model.requests)


def ciw_network(model: Model) -> Any:
    """The model as a one-node Ciw network.

    The burst replays pre-drawn gaps with ``Sequential``; a final infinite gap stops it from
    cycling. The deadline is Ciw's reneging with a deterministic patience: the request leaves
    the queue at its deadline rather than at the head, which in FIFO serves exactly the same
    requests (see :func:`simpy_request`), so the expired share is comparable.
    """
    import ciw

    if model.rate is None:
        arrivals = ciw.dists.Sequential([*arrival_gaps(model, random.Random(SEED)), math.inf])
    else:
        arrivals = ciw.dists.Exponential(rate=model.rate)
    if model.sigma is None:
        service = ciw.dists.Exponential(rate=1 / model.service_mean)
    else:
        service = ciw.dists.Lognormal(mean=model.log_mean, sd=model.sigma)
    reneging = [ciw.dists.Deterministic(value=model.patience)] if math.isfinite(model.patience) else None
    return ciw.create_network(
        arrival_distributions=[arrivals],
        service_distributions=[service],
        number_of_servers=[model.servers],
        reneging_time_distributions=reneging,
    )


def run_ciw(model: Model) -> Answer:
    """Ciw until ``ciw_requests`` customers have left (served or reneged), then its records read back."""
    import ciw

    ciw.seed(SEED)
    start = time.perf_counter()
    simulation = ciw.Simulation(ciw_network(model))
    simulation.simulate_until_max_customers(model.ciw_requests, method="Finish")
    records = simulation.get_all_records()
    waits = [r.waiting_time for r in records if r.record_type == "service"]
    wall = time.perf_counter() - start
    return Answer(len(records), wall, sum(waits) / len(waits), (len(records) - len(waits)) / len(records))


RUNNERS: dict[str, Callable[[Model], Answer]] = {"qsim": run_qsim, "simpy": run_simpy, "ciw": run_ciw}
