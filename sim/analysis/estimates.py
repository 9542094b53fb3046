"""Statistics over replications: Student-t intervals, MSER-5 warm-up, a stopping rule, paired and Welch tests.

Replications are independent and identically distributed (each has its own random streams),
so the mean of a metric over them has a Student-t interval. That is the only statistical
model here: every interval, stopping decision and comparison in qsim is a statement about
the *mean over replications* of a per-run metric (for instance the expected p99 of a run),
not about a single request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

Floats = NDArray[np.float64]

CONFIDENCE = 0.95
BATCH = 5
"""MSER-5: the series is first averaged in batches of five observations."""


def _stats() -> Any:
    """``scipy.stats``, imported on first use: it costs ~60 MB, and a single run never needs it."""
    from scipy import stats

    return stats


def _clean(values: ArrayLike) -> Floats:
    array = np.asarray(values, dtype=float)
    clean: Floats = array[~np.isnan(array)]
    return clean


def t_interval(values: ArrayLike, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of independent replications (NaNs ignored)."""
    clean = _clean(values)
    if len(clean) == 0:
        return math.nan, math.nan, math.nan
    mean = float(clean.mean())
    if len(clean) < 2:
        return mean, math.nan, math.nan
    half = half_width(clean, confidence)
    return mean, mean - half, mean + half


def half_width(values: ArrayLike, confidence: float = CONFIDENCE) -> float:
    """Half-width of the two-sided t interval (NaN with fewer than two values)."""
    clean = _clean(values)
    if len(clean) < 2:
        return math.nan
    quantile = float(_stats().t.ppf((1 + confidence) / 2, len(clean) - 1))
    return quantile * float(clean.std(ddof=1)) / math.sqrt(len(clean))


def one_sided_bounds(values: ArrayLike, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean, and the one-sided lower and upper ``confidence`` bounds of the mean.

    ``P(true mean <= upper) = confidence``: the bound a capacity plan needs ("p99 is at most
    2 s with 95 % confidence"), tighter than the upper end of a two-sided interval.
    With fewer than two values the bounds are infinite: nothing is known yet.
    """
    clean = _clean(values)
    if len(clean) == 0:
        return math.nan, -math.inf, math.inf
    mean = float(clean.mean())
    if len(clean) < 2:
        return mean, -math.inf, math.inf
    spread = float(_stats().t.ppf(confidence, len(clean) - 1)) * float(clean.std(ddof=1)) / math.sqrt(len(clean))
    return mean, mean - spread, mean + spread


def replications_needed(values: ArrayLike, relative: float, confidence: float = CONFIDENCE) -> int:
    """How many replications would bring the half-width below ``relative`` x |mean|, at the current spread.

    The usual sequential estimate ``n = (t s / (relative |mean|))^2`` with the t quantile of
    the replications so far; it is re-evaluated after each round, so a poor first guess
    only costs a round. A metric whose mean is 0 with spread cannot meet a relative
    precision: ``sys.maxsize`` (the caller caps it).
    """
    clean = _clean(values)
    if len(clean) < 2:
        return 2
    mean = abs(float(clean.mean()))
    spread = float(clean.std(ddof=1))
    if spread == 0:
        return len(clean)
    if mean == 0:
        return 2**62
    quantile = float(_stats().t.ppf((1 + confidence) / 2, len(clean) - 1))
    return max(len(clean), math.ceil((quantile * spread / (relative * mean)) ** 2))


def precise_enough(values: ArrayLike, relative: float, confidence: float = CONFIDENCE) -> bool:
    """True when the two-sided interval's half-width is at most ``relative`` x |mean|."""
    clean = _clean(values)
    if len(clean) < 2:
        return False
    return half_width(clean, confidence) <= relative * abs(float(clean.mean()))


def mser_truncation(series: ArrayLike, batch: int = BATCH) -> int:
    """Observations to delete from the start of ``series`` (a multiple of ``batch``) by MSER.

    MSER-5 (White 1997; White, Cobb & Spratt 2000): average the series in batches of 5,
    ``Z_1..Z_k``; for each candidate truncation ``d`` compute
    ``MSER(d) = sum_{j>d} (Z_j - mean(Z_{d+1..k}))^2 / (k - d)^2`` -- the squared standard
    error of the truncated mean -- and delete the ``d`` batches that minimise it. Deleting
    an initial transient lowers the spread faster than it loses data; deleting more only
    loses data. As usual, only ``d <= k/2`` is considered: a minimum past the middle means
    the run is too short to tell, and then the best candidate in the first half is taken.
    Needs at least two batches; fewer returns 0.
    """
    values = np.asarray(series, dtype=float)
    k = len(values) // batch
    if k < 2:
        return 0
    means = values[: k * batch].reshape(k, batch).mean(axis=1)
    suffix_sum = np.cumsum(means[::-1])[::-1]
    suffix_squares = np.cumsum((means**2)[::-1])[::-1]
    remaining = np.arange(k, 0, -1, dtype=float)
    squared_error = np.maximum(suffix_squares - suffix_sum**2 / remaining, 0.0)
    mser = squared_error / remaining**2
    candidates = mser[: k // 2 + 1]
    return int(np.argmin(candidates)) * batch


def paired_p_value(first: ArrayLike, second: ArrayLike) -> float:
    """Two-sided paired t-test p-value (``scipy.stats.ttest_rel``) of replication-wise differences.

    Replication ``r`` of both arms saw the same arrivals and service demands (common random
    numbers), so the differences are much less noisy than either arm: a paired test sees
    effects an unpaired one would miss. NaN when there are fewer than two pairs; 1.0 when
    every difference is exactly 0 (nothing changed), 0.0 when they are all the same non-zero
    value (a deterministic change).
    """
    a = np.asarray(first, dtype=float)
    b = np.asarray(second, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return math.nan
    differences = b - a
    if np.all(differences == differences[0]):
        return 1.0 if differences[0] == 0 else 0.0
    return float(_stats().ttest_rel(a, b).pvalue)


def welch_p_value(first: ArrayLike, second: ArrayLike) -> float:
    """Two-sided Welch t-test p-value (``scipy.stats.ttest_ind(equal_var=False)``) of two independent samples.

    For arms that did not see the same random numbers (different arrivals): their replications
    are not pairs, and the arms' variances may differ. NaN with fewer than two values in an arm;
    1.0 / 0.0 when both arms are constant and equal / different.
    """
    a, b = _clean(first), _clean(second)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.all(a == a[0]) and np.all(b == b[0]):
        return 1.0 if a[0] == b[0] else 0.0
    return float(_stats().ttest_ind(a, b, equal_var=False).pvalue)


def significance(p_value: float) -> str:
    """``***`` below 0.001, ``**`` below 0.01, ``*`` below 0.05, else empty."""
    if math.isnan(p_value):
        return ""
    for threshold, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*")):
        if p_value < threshold:
            return mark
    return ""


LABELS = ("engine",)
"""Text columns that describe how a run was computed, not which rows belong together: neither
grouped by nor averaged (an estimate is about the model, whichever engine ran it)."""


def key_columns(frame: pd.DataFrame, keys: Sequence[str] = ()) -> list[str]:
    """The columns that say what a row is about: the non-numeric ones and ``keys``, not ``replication``
    (nor the :data:`LABELS`).

    Generic on purpose: the engine may add key columns (``stage``) or numeric ones
    (``cost_usd``) and they are grouped or averaged without being listed here.
    """
    return [
        column
        for column in frame.columns
        if column != "replication" and column not in LABELS
        and (column in keys or not (pd.api.types.is_numeric_dtype(frame[column]) or frame[column].isna().all()))
    ]


STATS = ("mean", "ci_low", "ci_high")
"""The rows of each group in an estimates table, in this order."""

SHARE_METRICS = ("timeout_rate", "starvation", "utilization")
"""Summary metrics that are shares of something: their values lie in [0, 1]."""
SIGNED_METRICS: tuple[str, ...] = ()
"""Summary metrics that may be negative (none today): every other one is a count, a rate, a
duration, an amount of money or a share, so it is >= 0."""


def metric_range(column: str) -> tuple[float, float]:
    """The values ``column`` of a summary can take: the one table intervals are clipped to."""
    if column in SHARE_METRICS:
        return 0.0, 1.0
    if column in SIGNED_METRICS:
        return -math.inf, math.inf
    return 0.0, math.inf


def clip_to_range(column: str, low: float, high: float) -> tuple[float, float]:
    """An interval for the mean of ``column`` intersected with the values the metric can take.

    The true mean lies in the metric's range, so cutting off the impossible part of a Student-t
    interval keeps every possible value it covered: its coverage is unchanged, and it no longer
    reads ``3.96 % [-6.58 %, 14.50 %]``. NaN bounds stay NaN.
    """
    least, most = metric_range(column)
    return (low if math.isnan(low) else min(max(low, least), most),
            high if math.isnan(high) else max(min(high, most), least))


def estimates_table(per_run: pd.DataFrame, keys: Sequence[str] = (), confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Mean and two-sided confidence interval of every metric, per group of per-run rows.

    A group is every row with the same values of the key columns (see :func:`key_columns`;
    ``keys`` adds numeric ones such as a sweep axis). The table is tidy and typed: the key
    columns, ``stat`` (``mean``, ``ci_low``, ``ci_high``, in that order per group), ``runs``
    (replications in the group, an integer), then one float column per metric. Intervals are
    Student t over replications, clipped to each metric's range (:func:`metric_range`); with
    one replication the mean is the run and the interval is NaN.
    """
    groups_by = key_columns(per_run, keys)
    metrics = [c for c in per_run.columns if c not in ("replication", *LABELS) and c not in groups_by]
    columns = [*groups_by, "stat", "runs", *metrics]
    if per_run.empty:
        return pd.DataFrame(columns=columns)
    grouped = list(per_run.groupby(groups_by, sort=False, dropna=False)) if groups_by else [((), per_run)]
    rows = []
    for _, group in grouped:
        found = {}
        for column in metrics:
            mean, low, high = t_interval(group[column].to_numpy(dtype=float), confidence)
            found[column] = (mean, *clip_to_range(column, low, high))
        first = group.iloc[0]
        for position, stat in enumerate(STATS):
            row: dict[str, object] = {column: first[column] for column in groups_by}
            row.update({"stat": stat, "runs": len(group)})
            row.update({column: found[column][position] for column in metrics})
            rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    types: dict[str, Any] = {column: per_run[column].dtype for column in groups_by}
    types.update({"runs": np.int64, **dict.fromkeys(metrics, np.float64)})
    return frame.astype(types)


def headline(estimates: pd.DataFrame) -> pd.DataFrame:
    """The estimates about all requests: ``producer == all`` and, per remaining group of stats,
    the first (``stage == all`` comes first)."""
    if "producer" in estimates.columns:
        estimates = estimates[estimates["producer"] == "all"]
    subset = [c for c in ("point", "stat") if c in estimates.columns]
    return estimates.drop_duplicates(subset=subset, keep="first")


def stat_rows(estimates: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The ``mean``, ``ci_low`` and ``ci_high`` rows of one group of an estimates table."""
    by_stat = estimates.drop_duplicates("stat").set_index("stat")
    found = []
    for stat in STATS:
        row = by_stat.loc[stat]
        assert isinstance(row, pd.Series)  # one row per stat after drop_duplicates
        found.append(row)
    return found[0], found[1], found[2]
