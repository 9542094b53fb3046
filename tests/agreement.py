"""The rule every test uses to compare simulated estimates with queueing theory.

A check runs R independent replications (each with its own random streams; the seed is fixed,
so the test is deterministic) and takes one estimate per replication, say the mean wait of
the requests that arrived after the warm-up. Each replication is long (10^5 to 10^6 arrivals)
and starts measuring after many relaxation times, so the R estimates are i.i.d., close to
normal, and their start-up bias is far below the noise. With m their mean, s = sd / sqrt(R)
its standard error and theta the theoretical value, the check asserts

    (1)  s <= s_max = b * |theta| / (k + z)     the run is precise enough to catch a bias b
    (2)  |m - theta| <= k * s                   the estimate agrees with theory

with k = t(0.9995, R - 1) (3.88 for R = 20) and z = z(0.999) = 3.09. Then:

* A correct simulator passes (2) with probability 99.9 %: (m - theta) / s is Student-t with
  R - 1 degrees of freedom.
* A simulator whose expected estimate is off by a relative bias of b or more fails with
  probability at least 99.9 %: (1) and (2) together need |m - theta| <= k * s_max =
  b |theta| - z * s_max, so m must land z * s_max or more short of its own expected value;
  if its standard error is at most s_max, that has probability Phi(-z) = 0.1 %. (s estimates
  the standard error to ~16 % with 20 replications; were the true one 16 % above s_max, the
  bias would still be caught with probability 99.6 %.)

So each check names ``catches`` = b, the smallest relative bias it is sure to catch, and is
sized (replications x arrivals) so that s is comfortably below s_max: for b = 3 % and R = 20,
s_max = 3 % / 6.97 = 0.43 % of the value. Failing (1) is not a verdict on the simulator; it
says the run is too short to test to that precision.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

REPLICATIONS = 20
"""Replications per check: enough for the t quantile (3.88) to be near the normal one (3.29)."""

PASS = 0.999
"""Probability that a correct simulator passes a check."""

CATCH = 0.999
"""Probability that a simulator biased by at least ``catches`` fails a check."""


def agreement_quantile(replications: int) -> float:
    """k: a correct simulator's mean lands within k standard errors of theory with probability PASS."""
    return float(stats.t.ppf(1 - (1 - PASS) / 2, replications - 1))


def standard_error_bound(expected: float, catches: float, replications: int = REPLICATIONS) -> float:
    """s_max: the largest standard error with which a relative bias ``catches`` is still caught."""
    return catches * abs(expected) / (agreement_quantile(replications) + float(stats.norm.ppf(CATCH)))


def assert_agrees(estimates: np.ndarray, expected: float, catches: float = 0.03) -> None:
    """Theory within k standard errors of the replications' mean, the standard error at most s_max.

    ``estimates`` holds one value per replication; ``catches`` is the relative bias the check
    must detect (see the module docstring for why these two assertions do).
    """
    replications = len(estimates)
    mean = float(np.mean(estimates))
    se = float(np.std(estimates, ddof=1) / np.sqrt(replications))
    bound = standard_error_bound(expected, catches, replications)
    assert se <= bound, (
        f"too imprecise to catch a {catches:.1%} bias: standard error {se:.4g} ({se / abs(expected):.2%} of "
        f"{expected:.5g}) > {bound:.4g}; run longer"
    )
    k = agreement_quantile(replications)
    assert abs(mean - expected) <= k * se, (
        f"simulated {mean:.5g} +- {k * se:.3g} (99.9 %, {replications} replications), theory {expected:.5g}: "
        f"off by {mean / expected - 1:+.2%}"
    )
