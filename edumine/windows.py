"""Time windows: month, quarter, semester (Jan-Jun / Jul-Dec, as Staudt Willet & Carpenter used) or year.

A window is identified by its start date (UTC) and carries a label a person reads: ``2018-03``,
``2018Q1``, ``2018H1``, ``2018``. Every stage that summarises over time uses these functions, so that
topics, themes and participation line up window by window.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

UNITS = ("month", "quarter", "semester", "year")
_MONTHS_PER_UNIT = {"month": 1, "quarter": 3, "semester": 6, "year": 12}


def window_start(moment: date, unit: str) -> date:
    size = _MONTHS_PER_UNIT[unit]
    month = (moment.month - 1) // size * size + 1
    return date(moment.year, month, 1)


def window_label(start: date, unit: str) -> str:
    if unit == "month":
        return f"{start.year:04d}-{start.month:02d}"
    if unit == "quarter":
        return f"{start.year:04d}Q{(start.month - 1) // 3 + 1}"
    if unit == "semester":
        return f"{start.year:04d}H{1 if start.month <= 6 else 2}"
    return f"{start.year:04d}"


def next_window(start: date, unit: str) -> date:
    months = start.year * 12 + start.month - 1 + _MONTHS_PER_UNIT[unit]
    return date(months // 12, months % 12 + 1, 1)


def window_starts(created_at: Any, unit: str) -> np.ndarray:
    """Vectorised ``window_start`` over timestamps (pyarrow array, pandas Series or numpy datetime64)."""
    if unit not in _MONTHS_PER_UNIT:
        raise ValueError(f"unknown window unit {unit!r}; use one of {', '.join(UNITS)}")
    if hasattr(created_at, "to_numpy") and not isinstance(created_at, np.ndarray):
        try:
            created_at = created_at.to_numpy(zero_copy_only=False)
        except TypeError:
            created_at = created_at.to_numpy()
    values = np.asarray(created_at)
    if values.dtype == object:
        values = np.array([np.datetime64(v.replace(tzinfo=None)) if v is not None else np.datetime64("NaT")
                           for v in values], dtype="datetime64[us]")
    months = values.astype("datetime64[M]").astype(np.int64)
    size = _MONTHS_PER_UNIT[unit]
    start_months = months // 12 * 12 + (months % 12) // size * size
    return start_months.astype("datetime64[M]").astype("datetime64[D]")


def all_windows(first: date, last: date, unit: str) -> list[date]:
    """Every window from the one holding ``first`` to the one holding ``last`` (empty ones included)."""
    windows, current = [], window_start(first, unit)
    end = window_start(last, unit)
    while current <= end:
        windows.append(current)
        current = next_window(current, unit)
    return windows
