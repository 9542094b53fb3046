"""Closed forms of queueing theory: the oracles the simulator is tested against.

All times are in seconds, rates per second. ``arrival_rate`` is lambda, ``service_rate``
mu (= 1 / mean service time), ``servers`` c. Results are stationary (long-run) values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stationary:
    """Long-run measures of a queue. ``wait`` is the mean time in queue (Wq), ``sojourn`` W = Wq + E[S]."""

    utilization: float
    wait: float
    sojourn: float
    queue_length: float
    p_wait: float
    p_block: float = 0.0


def _stable(arrival_rate: float, service_rate: float, servers: int) -> float:
    if arrival_rate <= 0 or service_rate <= 0 or servers < 1:
        raise ValueError(f"need positive rates and servers, got {arrival_rate=}, {service_rate=}, {servers=}")
    rho = arrival_rate / (servers * service_rate)
    if rho >= 1:
        raise ValueError(f"unstable: utilization {rho:.3f} >= 1 has no stationary wait")
    return rho


def mm1(arrival_rate: float, service_rate: float) -> Stationary:
    """M/M/1: ``Wq = rho / (mu - lambda)``; an arrival waits with probability rho."""
    rho = _stable(arrival_rate, service_rate, 1)
    wait = rho / (service_rate - arrival_rate)
    return Stationary(rho, wait, wait + 1 / service_rate, arrival_rate * wait, rho)


def erlang_b(servers: int, offered_load: float) -> float:
    """Blocking probability of M/M/c/c, by the stable recursion ``B(k) = a B(k-1) / (k + a B(k-1))``."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in M/M/c (Erlang C), from Erlang B: no factorial overflow at c = 2000."""
    rho = offered_load / servers
    if rho >= 1:
        return 1.0
    blocking = erlang_b(servers, offered_load)
    return blocking / (1 - rho * (1 - blocking))


def mmc(arrival_rate: float, service_rate: float, servers: int) -> Stationary:
    """M/M/c: ``P(wait) = C(c, a)``, ``Wq = C(c, a) / (c mu - lambda)`` with ``a = lambda / mu``."""
    rho = _stable(arrival_rate, service_rate, servers)
    p_wait = erlang_c(servers, arrival_rate / service_rate)
    wait = p_wait / (servers * service_rate - arrival_rate)
    return Stationary(rho, wait, wait + 1 / service_rate, arrival_rate * wait, p_wait)


def mmc_wait_tail(arrival_rate: float, service_rate: float, servers: int, t: float) -> float:
    """``P(Wq > t) = C(c, a) exp(-(c mu - lambda) t)`` in M/M/c (FIFO)."""
    model = mmc(arrival_rate, service_rate, servers)
    return model.p_wait * math.exp(-(servers * service_rate - arrival_rate) * t)


def _birth_death(births: np.ndarray, deaths: np.ndarray) -> np.ndarray:
    """Stationary distribution of a finite birth-death chain, computed in log space."""
    log_terms = np.concatenate([[0.0], np.cumsum(np.log(births) - np.log(deaths))])
    log_terms -= log_terms.max()
    weights: np.ndarray = np.exp(log_terms)
    return weights / float(weights.sum())


def mmck(arrival_rate: float, service_rate: float, servers: int, capacity: int) -> Stationary:
    """M/M/c/K with ``capacity`` = K, the most requests in the system (queue room = K - c).

    An arrival finding K in the system is blocked (PASTA: with the stationary probability
    of state K). Waits are of admitted requests. Stable at any load.
    """
    if capacity < servers:
        raise ValueError(f"capacity K={capacity} must be >= servers c={servers}")
    states = np.arange(1, capacity + 1)
    probabilities = _birth_death(np.full(capacity, arrival_rate), np.minimum(states, servers) * service_rate)
    p_block = float(probabilities[-1])
    n = np.arange(capacity + 1)
    queue_length = float(np.sum(np.maximum(n - servers, 0) * probabilities))
    admitted = arrival_rate * (1 - p_block)
    wait = queue_length / admitted
    p_wait = float(probabilities[servers:capacity].sum() / (1 - p_block))
    utilization = admitted / (servers * service_rate)
    return Stationary(utilization, wait, wait + 1 / service_rate, queue_length, p_wait, p_block)


def mg1(arrival_rate: float, mean_service: float, service_variance: float) -> Stationary:
    """M/G/1 by Pollaczek-Khinchine: ``Wq = lambda E[S^2] / (2 (1 - rho))``."""
    rho = _stable(arrival_rate, 1 / mean_service, 1)
    second_moment = service_variance + mean_service**2
    wait = arrival_rate * second_moment / (2 * (1 - rho))
    return Stationary(rho, wait, wait + mean_service, arrival_rate * wait, rho)


def md1(arrival_rate: float, service_time: float) -> Stationary:
    """M/D/1: Pollaczek-Khinchine with zero service variance, half the M/M/1 wait."""
    return mg1(arrival_rate, service_time, 0.0)


@dataclass(frozen=True)
class Abandonment:
    """Erlang A (M/M/c+M) long-run measures."""

    p_abandon: float
    p_wait: float
    wait_served: float
    """Mean time in queue of the requests that are served."""
    wait_all: float
    """Mean time in queue over all arrivals (served or abandoned)."""


def erlang_a(arrival_rate: float, service_rate: float, servers: int, patience_rate: float,
             truncate: int | None = None) -> Abandonment:
    """M/M/c+M: customers abandon the queue after an exponential patience (rate theta).

    Solved as a birth-death chain with death rate ``min(n, c) mu + max(n - c, 0) theta``,
    truncated far in the tail. A customer who waits ``w`` is served iff patience > w; with
    exponential patience the served customers' mean wait follows from the chain by
    conditioning (each waiting customer abandons at rate theta).
    """
    if truncate is None:
        truncate = servers + int(20 * (arrival_rate / patience_rate + 10 * math.sqrt(arrival_rate / patience_rate + 1)))
    states = np.arange(1, truncate + 1)
    deaths = np.minimum(states, servers) * service_rate + np.maximum(states - servers, 0) * patience_rate
    probabilities = _birth_death(np.full(truncate, arrival_rate), deaths)
    n = np.arange(truncate + 1)
    queue_length = float(np.sum(np.maximum(n - servers, 0) * probabilities))
    p_abandon = patience_rate * queue_length / arrival_rate
    p_wait = float(probabilities[servers:].sum())
    wait_all = queue_length / arrival_rate
    wait_served = _erlang_a_served_wait(servers, service_rate, patience_rate, probabilities)
    return Abandonment(p_abandon, p_wait, wait_served, wait_all)


def _erlang_a_served_wait(servers: int, service_rate: float, patience_rate: float,
                          probabilities: np.ndarray) -> float:
    """Mean wait of served customers in M/M/c+M (FIFO).

    A customer arriving with ``k`` customers ahead in queue (state ``n = c + k``) must see
    ``k + 1`` departures from the queue head's position before entering service. While ``j``
    customers are ahead of it the next event that moves it forward happens at rate
    ``c mu + j theta`` (a service completion or an abandonment ahead), and it abandons itself
    at rate ``theta``. So it is served with probability ``prod_j (c mu + j theta) / (c mu + (j + 1) theta)``
    and, given service, its wait is the sum of exponential stages of rates ``c mu + (j + 1) theta``.
    """
    total_served_prob = 0.0
    total_served_wait = 0.0
    queue_states = probabilities[servers:]
    c_mu = servers * service_rate
    served_prob = 1.0
    stage_mean = 0.0
    for ahead, probability in enumerate(queue_states):
        rate = c_mu + (ahead + 1) * patience_rate
        served_prob *= (c_mu + ahead * patience_rate) / rate
        stage_mean += 1.0 / rate
        total_served_prob += probability * served_prob
        total_served_wait += probability * served_prob * stage_mean
    p_no_wait = float(probabilities[:servers].sum())
    return total_served_wait / (p_no_wait + total_served_prob)


@dataclass(frozen=True)
class PriorityClass:
    arrival_rate: float
    mean_service: float
    service_variance: float


def cobham(classes: list[PriorityClass]) -> list[float]:
    """Mean queue waits of non-preemptive priority classes in M/G/1 (class 0 served first).

    ``Wq_k = W0 / ((1 - s_{k-1}) (1 - s_k))`` with ``W0 = sum_i lambda_i E[S_i^2] / 2`` and
    ``s_k`` the load of classes 0..k.
    """
    residual = sum(c.arrival_rate * (c.service_variance + c.mean_service**2) for c in classes) / 2
    waits = []
    load_before = 0.0
    for c in classes:
        load_through = load_before + c.arrival_rate * c.mean_service
        if load_through >= 1:
            raise ValueError("unstable: total load of the classes so far >= 1")
        waits.append(residual / ((1 - load_before) * (1 - load_through)))
        load_before = load_through
    return waits
