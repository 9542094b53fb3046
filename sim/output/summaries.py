"""How the output layer reads a summary: per-run rows, and the estimates over replications.

Tables and figures read the summary only through these functions, so a change in how the
summary stores its estimates (today ``mean``/``ci_low``/``ci_high`` rows under the
``replication`` column) touches this module alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ESTIMATES = ("mean", "ci_low", "ci_high")


def run_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of single runs (an integer replication), without the estimates."""
    return summary[summary["replication"].apply(lambda r: isinstance(r, int | np.integer))]


def estimates(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series] | None:
    """The mean, lower and upper 95 % bound rows of one group, or None with a single replication."""
    labels = rows["replication"].astype(str)
    if not (labels == "mean").any():
        return None
    mean, low, high = (rows[labels == label].iloc[0] for label in ESTIMATES)
    return mean, low, high


def estimate_frame(rows: pd.DataFrame, which: str, index: str) -> pd.DataFrame:
    """The ``which`` estimate row (``mean``, ``ci_low`` or ``ci_high``) of every ``index`` group."""
    return rows[rows["replication"].astype(str) == which].set_index(index)


def has_estimates(rows: pd.DataFrame) -> bool:
    return bool((rows["replication"].astype(str) == "mean").any())


def all_requests(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows about every request: ``producer == all`` and the end-to-end ``stage``."""
    if "producer" in summary.columns:
        summary = summary[summary["producer"] == "all"]
    if "stage" in summary.columns:
        summary = summary[summary["stage"] == "all"]
    return summary
