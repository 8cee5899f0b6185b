"""Topics over time: prevalence per window and community (with bootstrap intervals) and per-window topic
representations (c-TF-IDF terms with the global model's IDF, and the window's centroid of its documents).

Windows come from ``edumine.windows`` so that topics, themes and participation line up; intervals from
``edumine.stats.bootstrap_share_interval``. The per-window terms and centroids are what a lineage stage
matches across windows (topic ``t`` in 2018H1 against topic ``u`` in 2018H2).
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


def window_representations(window_starts: np.ndarray, topics: np.ndarray, topic_ids: list[int], counts: Any,
                           ctfidf: Any, vocabulary: np.ndarray, vectors: np.ndarray, unit: str, *,
                           top_n: int = 10) -> dict[str, list[Any]]:
    """Per window and topic (outliers left out): docs, top c-TF-IDF terms and weights, and the centroid.

    ``counts`` is the docs x terms count matrix of the fitted vectorizer; ``ctfidf`` the fitted
    ClassTfidfTransformer (so the IDF is the whole corpus's, and terms are comparable across windows).
    """
    import scipy.sparse as sp

    starts = np.asarray(window_starts).astype("datetime64[D]")
    keep = topics != -1
    pairs = np.stack([starts[keep].astype(np.int64), topics[keep]], axis=1)
    groups, group_of = np.unique(pairs, axis=0, return_inverse=True)
    group_of = np.asarray(group_of).ravel()
    rows_idx = np.flatnonzero(keep)
    indicator = sp.csr_matrix((np.ones(len(rows_idx)), (group_of, rows_idx)), shape=(len(groups), len(topics)))
    summed = indicator @ counts
    weights = ctfidf.transform(sp.csr_matrix(summed))
    sizes = np.asarray(indicator.sum(axis=1)).ravel()
    centroids = (indicator @ vectors) / np.maximum(sizes, 1)[:, None]
    out: dict[str, list[Any]] = {k: [] for k in ("window_start", "window_label", "topic_id", "docs", "terms", "weights",
                                                 "centroid")}
    weights = sp.csr_matrix(weights)
    for g, (start_days, topic_id) in enumerate(groups):
        row = weights.getrow(g)
        order = np.argsort(-row.data, kind="stable")[:top_n]
        start = date.fromisoformat(str(np.datetime64(int(start_days), "D")))
        out["window_start"].append(start)
        out["window_label"].append(window_label(start, unit))
        out["topic_id"].append(int(topic_id))
        out["docs"].append(int(sizes[g]))
        out["terms"].append([str(vocabulary[i]) for i in row.indices[order]])
        out["weights"].append([float(x) for x in row.data[order]])
        out["centroid"].append(np.asarray(centroids[g], dtype=np.float32).tolist())
    return out
