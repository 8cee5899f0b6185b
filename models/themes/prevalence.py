"""Theme prevalence per (window, community) group from doc_themes as Arrow arrays, and the nightly plan.

A group's rows depend only on its own docs (their scores and decisions, in uid order), the model, the
estimator and the interval settings: its bootstrap seed is a hash of ``seed``, the window's start and the
community (``group_seed``), not its position among the groups. So a nightly run recomputes only the groups
whose docs changed and keeps the other rows of the last run's ``theme_prevalence``; the result is the one a
full recomputation gives, table by table.

``group_fingerprints`` summarises each group: its doc count and an order-free fingerprint (XOR of a 64-bit
hash of each doc's uid). The theme stage keeps them in ``theme_windows`` with a ``basis`` (a hash of the model,
method, labels, F1, reliability floor, interval level, seed and window unit); ``plan_groups`` compares them
with the last run's. doc_themes keeps a doc's row while the model is unchanged (a new model changes the basis),
so equal uids mean equal rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edumine.progress import Progress
from edumine.tables import THEME_PREVALENCE, THEME_WINDOWS

log = logging.getLogger(__name__)

BASIS_VERSION = "theme-prevalence.v2"  # v2: per-group seeds from the group's key (v1: its position)
GROUP_KEY = ["window_start", "community"]


def group_seed(seed: int, day: Any, community: str) -> int:
    """The bootstrap seed of one (window, community) group: stable across runs, processes and versions."""
    text = f"{int(seed)}|{pd.Timestamp(day).date().isoformat()}|{community}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def prevalence_basis(*, model_name: str, method: str, labels: dict[str, str], f1: dict[str, float], floor: float,
                     level: float, seed: int, unit: str) -> str:
    """What a group's rows depend on besides its docs, as a short hash (``theme_windows.basis``)."""
    text = json.dumps({"version": BASIS_VERSION, "model": model_name, "method": method, "labels": labels,
                       "f1": {t: (None if v != v else v) for t, v in f1.items()}, "floor": floor,
                       "level": level, "seed": seed, "unit": unit}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@dataclass
class Groups:
    """Docs grouped by (window_start, community): ``table`` (one row per group, sorted by window_start then
    community: window_start as datetime64[D], community, docs), ``rows`` (doc row numbers, grouped, each group's
    in table order) and ``bounds`` (group g's rows are ``rows[bounds[g]:bounds[g + 1]]``). Docs without a
    created_at or community are in no group (as pandas' groupby drops them)."""

    table: pd.DataFrame
    rows: np.ndarray
    bounds: np.ndarray

    def members(self, group: int) -> np.ndarray:
        return self.rows[self.bounds[group]:self.bounds[group + 1]]


def doc_groups(doc_themes: pa.Table, unit: str) -> Groups:
    from edumine.windows import window_starts

    created = doc_themes.column("created_at")
    community = pc.dictionary_encode(doc_themes.column("community").combine_chunks())
    names = np.asarray(community.dictionary.to_pylist(), dtype=object)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    codes = community.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    valid = (codes >= 0) & pc.is_valid(created).to_numpy(zero_copy_only=False)
    days = np.zeros(len(codes), dtype=np.int64)
    if valid.any():
        days[valid] = window_starts(created.filter(pa.array(valid)), unit).astype(np.int64)
    keys = days * max(len(names), 1) + np.where(codes >= 0, rank[np.maximum(codes, 0)], 0)
    index = np.flatnonzero(valid)
    unique, inverse = np.unique(keys[index], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(unique))
    by_rank = names[np.argsort(rank)] if len(names) else names
    table = pd.DataFrame({"window_start": (unique // max(len(names), 1)).astype("datetime64[D]"),
                          "community": by_rank[unique % max(len(names), 1)] if len(unique) else
                          np.array([], dtype=object),
                          "docs": counts.astype(np.int64)})
    return Groups(table, index[order], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def group_fingerprints(doc_themes: pa.Table, groups: Groups, basis: str) -> pd.DataFrame:
    """``theme_windows`` rows: per group its docs and the XOR of a 64-bit hash of its uids."""
    uids = doc_themes.column("uid").to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(np.asarray(uids, dtype=object)).view(np.int64)
    fingerprint = np.zeros(len(groups.table), dtype=np.int64)
    if len(groups.rows):
        fingerprint = np.bitwise_xor.reduceat(hashed[groups.rows], groups.bounds[:-1])  # no group is empty
    return groups.table.assign(fingerprint=fingerprint, basis=basis)[THEME_WINDOWS.names]


def score_arrays(table: pa.Table, theme_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(P, decisions): per-doc probabilities from the ``scores`` map column and flags from the ``themes``
    list column (docs x themes, in ``theme_ids`` order); themes outside ``theme_ids`` are ignored."""
    n, ids = table.num_rows, pa.array(theme_ids, pa.string())
    P, decisions = np.zeros((n, len(theme_ids))), np.zeros((n, len(theme_ids)), dtype=bool)
    if n == 0:
        return P, decisions
    scores = table.column("scores").combine_chunks()
    entries = pa.list_(pa.struct([("key", pa.string()), ("value", pa.float32())]))
    keys, values = scores.cast(entries).flatten().flatten()  # a map's own keys/items ignore slicing
    rows = _parents(scores)
    column = pc.index_in(keys, value_set=ids).fill_null(-1).to_numpy()
    known = column >= 0
    P[rows[known], column[known]] = values.to_numpy(zero_copy_only=False)[known]
    themes = table.column("themes").combine_chunks()
    column = pc.index_in(themes.flatten(), value_set=ids).fill_null(-1).to_numpy()
    rows = _parents(themes)
    known = column >= 0
    decisions[rows[known], column[known]] = True
    return P, decisions


def _parents(lists: pa.Array) -> np.ndarray:
    """Each flattened entry's row (a list or map array; a null row has no entries)."""
    lengths = np.diff(np.asarray(lists.offsets, dtype=np.int64))
    lengths[~np.asarray(lists.is_valid(), dtype=bool)] = 0
    return np.repeat(np.arange(len(lists)), lengths)


def prevalence_rows(doc_themes: pa.Table, groups: Groups, which: np.ndarray, theme_ids: list[str],
                    labels: dict[str, str], unit: str, *, prevalence: Any, f1: dict[str, float], floor: float,
                    level: float, seed: int, model_name: str) -> pa.Table:
    """``theme_prevalence`` rows of the groups numbered ``which`` (catalog schema, in group then theme order)."""
    from edumine.models.themes.calibration import ZERO_SHOT, estimate
    from edumine.windows import window_label

    k = len(theme_ids)
    members = [groups.members(int(g)) for g in which]
    taken = doc_themes.select(["scores", "themes"]).take(pa.array(np.concatenate(members) if members else
                                                                  np.array([], dtype=np.int64)))
    P, decisions = score_arrays(taken, theme_ids)
    columns: dict[str, list[Any]] = {name: [] for name in THEME_PREVALENCE.names}
    scores = [f1.get(theme, float("nan")) for theme in theme_ids]
    reliable = [bool(prevalence.method != ZERO_SHOT and s == s and s >= floor) for s in scores]
    start = 0
    with Progress("themes: prevalence per window and community", total=len(which), unit="groups",
                  logger=log) as progress:
        for g, index in zip(which, members):
            rows = slice(start, start + len(index))
            start += len(index)
            day = pd.Timestamp(groups.table["window_start"].iloc[g]).date()
            community = groups.table["community"].iloc[g]
            share, low, high = estimate(P[rows], decisions[rows], prevalence, level=level,
                                        seed=group_seed(seed, day, community))
            columns["window_start"] += [day] * k
            columns["window_label"] += [window_label(day, unit)] * k
            columns["community"] += [community] * k
            columns["theme"] += theme_ids
            columns["theme_label"] += [labels.get(t, t) for t in theme_ids]
            columns["docs"] += [len(index)] * k
            columns["theme_docs"] += decisions[rows].sum(axis=0).astype(np.int64).tolist()
            columns["share"] += np.asarray(share, dtype=float).tolist()
            columns["share_low"] += np.asarray(low, dtype=float).tolist()
            columns["share_high"] += np.asarray(high, dtype=float).tolist()
            columns["model"] += [model_name] * k
            columns["method"] += [prevalence.method] * k
            columns["f1"] += scores
            columns["reliable"] += reliable
            progress.advance(1)
    return pa.table(columns, schema=THEME_PREVALENCE)


@dataclass
class GroupPlan:
    recompute: np.ndarray  # group numbers (of the run's Groups) to compute
    keep: pd.DataFrame  # window_start (datetime64[D]), community: last run's rows to keep
    reason: str


def plan_groups(old: pd.DataFrame | None, new: pd.DataFrame, old_rows: pa.Table | None) -> GroupPlan:
    """Which groups to recompute: those whose docs, fingerprint or basis differ from the last run's state
    (``old``, ``theme_windows``); all of them without state or without the last run's theme_prevalence."""
    everything = np.arange(len(new))
    if old is None or old_rows is None or not len(old):
        return GroupPlan(everything, new.iloc[:0][GROUP_KEY], "no state from a previous run: all groups")
    old = old.assign(window_start=pd.to_datetime(old["window_start"]).to_numpy().astype("datetime64[D]"))
    if set(old["basis"]) != set(new["basis"]):
        return GroupPlan(everything, new.iloc[:0][GROUP_KEY], "model, method or settings changed: all groups")
    matched = new.reset_index().merge(old, on=THEME_WINDOWS.names, how="inner")
    same = np.zeros(len(new), dtype=bool)
    same[matched["index"].to_numpy()] = True
    keep = new.loc[same, GROUP_KEY]
    if len(keep) and not _rows_cover(old_rows, keep):
        return GroupPlan(everything, new.iloc[:0][GROUP_KEY], "the last run's theme_prevalence lacks rows: all groups")
    return GroupPlan(np.flatnonzero(~same), keep, "groups whose docs changed")


def _group_keys(table: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(pc.cast(table.column("window_start"), pa.string()),
                                       table.column("community"), "\x1f")


def _keys_of(frame: pd.DataFrame) -> pa.Array:
    days = pa.array(frame["window_start"].to_numpy().astype("datetime64[D]"), pa.date32())
    return _group_keys(pa.table({"window_start": days, "community": pa.array(frame["community"], pa.string())}))


def _rows_cover(old_rows: pa.Table, keep: pd.DataFrame) -> bool:
    present = pc.unique(_group_keys(old_rows))
    return bool(pc.all(pc.is_in(_keys_of(keep), value_set=present)).as_py())


def merge_rows(old_rows: pa.Table | None, fresh: pa.Table, keep: pd.DataFrame) -> pa.Table:
    """The last run's rows of the ``keep`` groups plus the fresh rows, sorted by window, community, theme."""
    parts = [fresh]
    if old_rows is not None and len(keep):
        kept = old_rows.filter(pc.is_in(_group_keys(old_rows), value_set=_keys_of(keep)))
        parts.insert(0, kept.select(THEME_PREVALENCE.names).cast(THEME_PREVALENCE))
    table = pa.concat_tables(parts) if len(parts) > 1 else fresh
    order = pc.sort_indices(table, sort_keys=[("window_start", "ascending"), ("community", "ascending"),
                                              ("theme", "ascending")])
    return table.take(order)
