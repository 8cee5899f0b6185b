"""Nightly lineage: recompute only the window pairs whose documents changed, keep the rest.

A lineage unit is one (scope, window) pair as the "after" side: its edges (``topic_lineage`` rows with that
``to_window_start``) and events (``topic_events`` rows with that ``window_start``) depend only on the docs of
that window and of its predecessor (the scope's previous window with at least ``min_window_docs`` docs), given
a fixed centre for the embedding centroids (the topic model's) and intervals that depend on a row's own counts
(``edumine.stats.bootstrap_share_interval``). So a unit whose two windows hold the same docs with the same
topics and text as at the last run, and whose predecessor is the same window, has the same rows.

``window_fingerprints`` summarises each (scope, window): its doc count and an order-free fingerprint (XOR of
a 64-bit hash of uid, topic id and text hash per doc). The lineage stage keeps them in ``lineage_windows``
with a ``basis`` (a hash of what else the rows depend on: the lineage settings, the topic model's centre and
embedding key); ``plan_units`` compares them with the last run's and says which units to recompute, which to
keep, and which windows' docs the recomputation needs. A different basis, or no stored state, recomputes all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from edumine.windows import window_starts

ALL_SCOPE = "all"
FINGERPRINT_COLUMNS = ["community", "window_start", "docs", "fingerprint", "basis"]


def window_fingerprints(frame: pd.DataFrame, unit: str, per_community: bool, basis: str) -> pd.DataFrame:
    """One row per (scope, window) of ``frame`` (uid, community, created_at, topic_id, text_hash): docs and
    fingerprint (int64). ``window_start`` as datetime64[D]."""
    starts = np.asarray(window_starts(frame["created_at"], unit)).astype("datetime64[D]")
    hashed = pd.util.hash_pandas_object(
        pd.DataFrame({"uid": frame["uid"].astype(str).to_numpy(),
                      "topic": frame["topic_id"].astype(np.int64).to_numpy(),
                      "text": frame["text_hash"].astype(str).to_numpy()}), index=False).to_numpy().view(np.int64)
    scopes = [np.full(len(frame), ALL_SCOPE, dtype=object)]
    if per_community:
        scopes.append(frame["community"].astype(str).to_numpy(dtype=object))
    keys = pd.DataFrame({"community": np.concatenate(scopes), "window_start": np.tile(starts, len(scopes))})
    codes = keys.groupby(["community", "window_start"], sort=True).ngroup().to_numpy()
    groups = keys.drop_duplicates().sort_values(["community", "window_start"], kind="stable").reset_index(drop=True)
    fingerprint = np.zeros(len(groups), dtype=np.int64)
    np.bitwise_xor.at(fingerprint, codes, np.tile(hashed, len(scopes)))
    groups["docs"] = np.bincount(codes, minlength=len(groups)).astype(np.int64)
    groups["fingerprint"] = fingerprint
    groups["basis"] = basis
    return groups[FINGERPRINT_COLUMNS]


@dataclass
class UnitPlan:
    """``recompute``, ``keep``: sets of (scope, window day number) after-units; ``windows``: window day numbers
    whose docs the recomputation needs; ``full``: nothing kept (no usable state)."""

    recompute: set[tuple[str, int]]
    keep: set[tuple[str, int]]
    windows: set[int]
    full: bool
    reason: str


def _days(values: Any) -> np.ndarray:
    return np.asarray(pd.to_datetime(pd.Series(values)).to_numpy().astype("datetime64[D]").astype(np.int64))


def _sequences(fingerprints: pd.DataFrame, min_window_docs: int) -> dict[str, list[int]]:
    """Per scope, the windows (day numbers, ascending) that lineage compares: those with enough docs."""
    enough = fingerprints[fingerprints["docs"] >= min_window_docs]
    days = _days(enough["window_start"])
    out: dict[str, list[int]] = {}
    for scope, day in sorted(zip(enough["community"].astype(str), days.tolist())):
        out.setdefault(scope, []).append(day)
    return out


def plan_units(old: pd.DataFrame | None, new: pd.DataFrame, min_window_docs: int) -> UnitPlan:
    """Which after-units to recompute and which to keep (module docstring)."""
    sequences = _sequences(new, min_window_docs)
    units = {(scope, w): p for scope, days in sequences.items() for p, w in zip(days, days[1:])}
    if old is None or old.empty or not set(FINGERPRINT_COLUMNS) <= set(old.columns):
        reason = "no lineage state from an earlier run"
    elif set(old["basis"].astype(str)) != set(new["basis"].astype(str)):
        reason = "lineage settings, topic model centre or embeddings changed"
    else:
        reason = ""
    if reason:
        windows = {day for unit, p in units.items() for day in (p, unit[1])}
        return UnitPlan(set(units), set(), windows, True, reason)
    state = {(scope, day): (docs, fp) for scope, day, docs, fp in
             zip(old["community"].astype(str), _days(old["window_start"]).tolist(), old["docs"], old["fingerprint"])}
    current = {(scope, day): (docs, fp) for scope, day, docs, fp in
               zip(new["community"].astype(str), _days(new["window_start"]).tolist(), new["docs"], new["fingerprint"])}
    old_units = {(scope, w): p for scope, days in _sequences(old, min_window_docs).items()
                 for p, w in zip(days, days[1:])}
    recompute, keep = set(), set()
    for (scope, w), p in units.items():
        same = all(state.get((scope, day)) == current.get((scope, day)) for day in (p, w))
        (keep if same and old_units.get((scope, w)) == p else recompute).add((scope, w))
    windows = {day for unit in recompute for day in (units[unit], unit[1])}
    return UnitPlan(recompute, keep, windows, False, f"{len(recompute)} of {len(units)} window pairs changed")


def unit_mask(table: Any, window_column: str, units: set[tuple[str, int]]) -> np.ndarray:
    """Rows of an Arrow table (``community`` and a date column) that belong to the given after-units."""
    if table is None or table.num_rows == 0:
        return np.zeros(0 if table is None else table.num_rows, dtype=bool)
    communities = table["community"].to_pylist()
    days = np.asarray(table[window_column].to_numpy(zero_copy_only=False)).astype("datetime64[D]").astype(np.int64)
    return np.array([(c, int(d)) in units for c, d in zip(communities, days)], dtype=bool)


def merge_units(old: Any, fresh: Any, window_column: str, plan: UnitPlan, sort_keys: list[str]) -> Any:
    """The table with the kept units' rows from ``old`` and the recomputed units' rows from ``fresh``, in the
    order a full computation writes (``sort_keys``, stable)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fresh = fresh.filter(pa.array(unit_mask(fresh, window_column, plan.recompute)))
    if not plan.full and old is not None and old.num_rows:
        kept = old.filter(pa.array(unit_mask(old, window_column, plan.keep))).select(fresh.column_names)
        fresh = pa.concat_tables([kept.cast(fresh.schema), fresh])
    if fresh.num_rows == 0:
        return fresh
    return fresh.take(pc.sort_indices(fresh, sort_keys=[(key, "ascending") for key in sort_keys]))
