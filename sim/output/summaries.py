"""How the output layer reads a summary: per-run rows, and the rows about every request.

A result's ``summary`` holds one row per run (an integer ``replication``) and its
``estimates`` the mean and interval over replications (:mod:`sim.analysis.estimates`); tables
and figures read rows through these functions.
"""

from __future__ import annotations

import pandas as pd


def run_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of single runs (every row of a summary: estimates live in their own table)."""
    return summary


def all_requests(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows about every request: ``producer == all`` and the end-to-end ``stage``."""
    if "producer" in summary.columns:
        summary = summary[summary["producer"] == "all"]
    if "stage" in summary.columns:
        summary = summary[summary["stage"] == "all"]
    return summary
