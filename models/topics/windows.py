"""Topics over time: prevalence per window and community, with bootstrap intervals.

Windows come from ``edumine.windows`` so that topics, themes and participation line up; intervals from
``edumine.stats.bootstrap_share_interval``. (Lineage builds its own per-window, per-community topic
representations from ``docs`` and ``doc_topics``: models/lineage/tracking.py.)
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from edumine.stats import bootstrap_share_interval
from edumine.windows import all_windows, window_label


def _as_dates(starts: np.ndarray) -> list[date]:
    return [date.fromisoformat(str(value)) for value in starts.astype("datetime64[D]")]


def prevalence_table(window_starts: np.ndarray, communities: list[str], topics: np.ndarray, topic_ids: list[int],
                     unit: str, *, resamples: int = 2000, seed: int = 0) -> dict[str, list[Any]]:
    """Rows of window x community x topic: docs, total docs, share and its 95 % bootstrap interval.

    Every topic (the outlier topic -1 included, so shares add up to one) appears in every window from a
    community's first to its last document, empty windows included (docs 0, interval NaN).
    """
    starts = np.asarray(window_starts).astype("datetime64[D]")
    community_arr = np.asarray(communities, dtype=object)
    topics = np.asarray(topics)
    rows: dict[str, list[Any]] = {k: [] for k in ("window_start", "window_label", "community", "topic_id", "docs",
                                                  "total_docs", "share", "share_low", "share_high")}
    hits_all, totals_all = [], []
    for community in sorted(set(communities)):
        mask = community_arr == community
        if not mask.any():
            continue
        own_starts, own_topics = starts[mask], topics[mask]
        windows = all_windows(_as_dates(own_starts.min(keepdims=True))[0], _as_dates(own_starts.max(keepdims=True))[0],
                              unit)
        keys = np.array([np.datetime64(w, "D") for w in windows])
        window_index = np.searchsorted(keys, own_starts)
        topic_index = np.searchsorted(np.array(topic_ids), own_topics)
        counts = np.zeros((len(windows), len(topic_ids)), dtype=np.int64)
        np.add.at(counts, (window_index, topic_index), 1)
        totals = counts.sum(axis=1)
        for w, start in enumerate(windows):
            for t, topic_id in enumerate(topic_ids):
                rows["window_start"].append(start)
                rows["window_label"].append(window_label(start, unit))
                rows["community"].append(community)
                rows["topic_id"].append(int(topic_id))
                rows["docs"].append(int(counts[w, t]))
                rows["total_docs"].append(int(totals[w]))
        hits_all.append(counts.ravel())
        totals_all.append(np.repeat(totals, len(topic_ids)))
    if hits_all:
        hits, totals = np.concatenate(hits_all), np.concatenate(totals_all)
        low, high = bootstrap_share_interval(hits, totals, resamples=resamples, seed=seed)
        share = np.divide(hits, totals, out=np.zeros(len(hits)), where=totals > 0)
        rows["share"], rows["share_low"], rows["share_high"] = share.tolist(), low.tolist(), high.tolist()
    return rows

