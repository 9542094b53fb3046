"""Service-time distributions: samples agree with the exact moments each one states.

Tolerances come from the standard error, not from taste. With n independent samples
of a distribution with variance s2 and fourth central moment m4:

* the sample mean has standard error sqrt(s2 / n);
* the sample variance has standard error sqrt((m4 - s2**2) / n) (to first order in 1/n).

Each test allows 5 standard errors: a correct sampler fails that by chance with
probability about 6e-7 (normal approximation), while a wrong moment (a swapped
parameter, a scale off by a factor) misses by hundreds of standard errors at n = 200,000.
The seed is fixed, so a pass is reproducible; the margin is there so that changing the
seed would not turn a correct sampler red. A moment off by a relative bias b fails with
probability 99.9 % once b >= (5 + 3.09) standard errors: for the means below that is 0.1 to
1.9 % (3.6 % for the gamma with cv 2); for the variances 1.6 to 5 %, except the heavy-tailed
lognormal with cv 1 (11 %) and gamma with cv 2 (9 %), whose fourth moments are large. The
fourth moments are written out below from their closed forms, independently of the code
under test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from sim.model import distributions as d
from sim.model.specs import DistributionSpec

N = 200_000
SEED = 20240611
STANDARD_ERRORS = 5.0

ADAPTER: TypeAdapter[Any] = TypeAdapter(DistributionSpec)


def fourth_central_moment(dist: Any) -> float:
    """E[(X - mean)^4] from the closed form of each family."""
    var = float(dist.variance)
    if isinstance(dist, d.Exponential):
        return 9.0 * var**2  # kurtosis 9
    if isinstance(dist, d.Uniform):
        return float((dist.high - dist.low) ** 4 / 80.0)
    if isinstance(dist, d.Gamma):
        shape = 1.0 / float(dist.cv) ** 2
        return var**2 * (3.0 + 6.0 / shape)
    if isinstance(dist, d.Lognormal):
        w = math.exp(float(dist.sigma) ** 2)
        return var**2 * (w**4 + 2 * w**3 + 3 * w**2 - 3)
    if isinstance(dist, d.Empirical):
        values = np.asarray(dist.values)
        return float(np.mean((values - values.mean()) ** 4))
    raise AssertionError(f"no fourth moment for {dist!r}")


def assert_moments_match(dist: Any, samples: np.ndarray) -> None:
    n = len(samples)
    se_mean = math.sqrt(dist.variance / n)
    se_var = math.sqrt((fourth_central_moment(dist) - dist.variance**2) / n)
    assert abs(samples.mean() - dist.mean) <= STANDARD_ERRORS * se_mean, (samples.mean(), dist.mean, se_mean)
    assert abs(samples.var(ddof=1) - dist.variance) <= STANDARD_ERRORS * se_var, (
        samples.var(ddof=1),
        dist.variance,
        se_var,
    )


RANDOM = [
    d.Exponential(0.5),
    d.Exponential(2e-3),
    d.Uniform(0.1, 0.9),
    d.Uniform(2.0, 2.5),
    d.Lognormal(0.5, 0.5),
    d.Lognormal(0.2, 1.0),
    d.Gamma(0.5, 0.5),
    d.Gamma(1.0, 2.0),  # cv > 1: burstier than exponential
    d.Empirical((0.1, 0.1, 0.2, 0.7, 1.5)),
]


@pytest.mark.parametrize("dist", RANDOM, ids=repr)
def test_sample_mean_and_variance_agree_with_the_exact_moments(dist: Any) -> None:
    samples = dist.sample(np.random.default_rng(SEED), N)
    assert samples.shape == (N,)
    assert samples.dtype == np.float64
    assert (samples >= 0).all()
    assert_moments_match(dist, samples)


@pytest.mark.parametrize("dist", RANDOM, ids=repr)
def test_the_same_seed_gives_the_same_samples(dist: Any) -> None:
    first = dist.sample(np.random.default_rng(7), 1000)
    again = dist.sample(np.random.default_rng(7), 1000)
    other = dist.sample(np.random.default_rng(8), 1000)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_stated_moments_are_the_textbook_ones() -> None:
    # Independent of the samplers: closed forms from the parameters people write.
    assert d.Exponential(0.5).variance == pytest.approx(0.25)
    assert (d.Uniform(1.0, 4.0).mean, d.Uniform(1.0, 4.0).variance) == pytest.approx((2.5, 0.75))
    assert (d.Gamma(2.0, 0.5).mean, d.Gamma(2.0, 0.5).variance) == pytest.approx((2.0, 1.0))
    assert (d.Lognormal(2.0, 0.5).mean, d.Lognormal(2.0, 0.5).variance) == pytest.approx((2.0, 1.0))
    empirical = d.Empirical((1.0, 2.0, 6.0))
    # Resampling with replacement: the population variance (ddof 0), not the sample one.
    assert (empirical.mean, empirical.variance) == pytest.approx((3.0, 14 / 3))


def test_constant_is_exactly_its_value() -> None:
    dist = d.Constant(0.25)
    samples = dist.sample(np.random.default_rng(SEED), 1000)
    assert (samples == 0.25).all()
    assert (dist.mean, dist.variance) == (0.25, 0.0)


def test_lognormal_log_space_parameters_give_the_requested_mean_and_cv() -> None:
    dist = d.Lognormal(0.5, 0.5)
    assert dist.sigma == pytest.approx(math.sqrt(math.log(1.25)))
    assert dist.mu == pytest.approx(math.log(0.5) - math.log(1.25) / 2)
    # In log space the samples are normal(mu, sigma): mean SE sigma/sqrt(n), variance SE sigma^2 sqrt(2/n).
    logs = np.log(dist.sample(np.random.default_rng(SEED), N))
    assert abs(logs.mean() - dist.mu) <= STANDARD_ERRORS * dist.sigma / math.sqrt(N)
    assert abs(logs.var(ddof=1) - dist.sigma**2) <= STANDARD_ERRORS * dist.sigma**2 * math.sqrt(2 / N)


@pytest.mark.parametrize(
    ("spec", "mean", "sigma"),
    [
        ({"dist": "lognormal", "mean": "500ms", "cv": 0.5}, 0.5, math.sqrt(math.log(1.25))),
        ({"dist": "lognormal", "mean": "500ms", "sigma": 0.5}, 0.5, 0.5),
        ({"dist": "lognormal", "mean": "2s", "sigma": 1.2}, 2.0, 1.2),
    ],
)
def test_lognormal_is_given_by_cv_or_by_sigma(spec: dict[str, Any], mean: float, sigma: float) -> None:
    dist = ADAPTER.validate_python(spec).build()
    assert isinstance(dist, d.Lognormal)
    assert dist.mean == pytest.approx(mean)
    assert dist.sigma == pytest.approx(sigma)
    assert dist.variance == pytest.approx(mean**2 * math.expm1(sigma**2))
    assert_moments_match(dist, dist.sample(np.random.default_rng(SEED), N))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"dist": "exponential", "mean": "250ms"}, d.Exponential(0.25)),
        ({"dist": "constant", "value": "2min"}, d.Constant(120.0)),
        ({"dist": "uniform", "low": "100ms", "high": 1}, d.Uniform(0.1, 1.0)),
        ({"dist": "gamma", "mean": "3s", "cv": 0.3}, d.Gamma(3.0, 0.3)),
    ],
)
def test_specs_build_the_distribution_in_seconds(spec: dict[str, Any], expected: Any) -> None:
    assert ADAPTER.validate_python(spec).build() == expected


def test_empirical_resamples_the_file_values(tmp_path: Path) -> None:
    (tmp_path / "times.csv").write_text("duration\n0.1\n\n0.3,ignored column\n0.3\n1.3\n")
    spec = ADAPTER.validate_python({"dist": "empirical", "file": "times.csv"}, context={"base_dir": str(tmp_path)})
    dist = spec.build()
    assert isinstance(dist, d.Empirical)
    assert dist.values == (0.1, 0.3, 0.3, 1.3)
    samples = dist.sample(np.random.default_rng(SEED), N)
    assert set(np.unique(samples)) == {0.1, 0.3, 1.3}
    # Each value is drawn with its share of the rows: 0.3 is 2 of 4 rows (binomial SE sqrt(p(1-p)/n)).
    share = float(np.mean(samples == 0.3))
    assert abs(share - 0.5) <= STANDARD_ERRORS * math.sqrt(0.25 / N)
    assert_moments_match(dist, samples)
    assert repr(dist) == "Empirical(<4 values, mean 0.5>)"


def test_repr_reads_like_the_constructor() -> None:
    assert repr(d.Exponential(0.5)) == "Exponential(mean=0.5)"
    assert repr(d.Lognormal(0.5, 0.5)) == "Lognormal(mean=0.5, cv=0.5)"
