"""Topic lineage across time windows: which topics emerge, persist, grow, decline, fade, split or merge.

``WindowLineage`` (registered as ``lineage.window_match.v1``) follows the scikit-learn estimator contract.
``fit(docs, embeddings)`` takes one row per usable document (``uid``, ``community``, ``created_at``,
``topic_id`` from the global topic model, ``lemmas``) and, for every scope (the whole corpus, ``all``, and
each community) and every window:

1. represents each topic present in the window by the centroid of its documents' embeddings (centred on
   the corpus mean, as the topic model does) and by its c-TF-IDF vector over the window's documents
   (BERTopic's class TF-IDF: L1-normalised term counts times ``log(1 + mean class size / term count)``);
2. matches the topics of the window to those of the previous window with documents, by the weighted
   cosine of both representations: every topic keeps an edge to its best match on the other side when
   that similarity reaches ``match_threshold`` (union of both directions);
3. classifies each topic: ``emerged`` (no predecessor), ``faded`` (no successor), ``split`` (its
   predecessor has several successors), ``merged`` (several predecessors), else ``grew`` / ``declined``
   when the 95 % prevalence intervals of the two windows do not overlap and the share changed by at least
   ``change_ratio``, else ``persisted``.

Window-level topics are derived from the global model (one fit, ids shared by all windows) rather than
fitted per window: per-window fits cost one clustering per window and scope, and their ids must be matched
anyway; the global model's ids make continuity cheap to see and the representations per window still show
drift, splits and merges (a new global topic close to an old one is a split). Learned: ``topics_`` (one row
per scope, window and present topic), ``lineage_`` (edges) and ``events_``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from edumine import registry
from edumine.progress import Progress, phase
from edumine.stats import bootstrap_share_interval
from edumine.windows import window_label, window_starts

log = logging.getLogger(__name__)

lineage_methods = registry.lineage_methods

ALL_SCOPE = "all"
EVENTS = ("emerged", "persisted", "grew", "declined", "faded", "split", "merged")


def _unit_rows(matrix: Any) -> Any:
    """Rows scaled to unit length (dense or sparse); zero rows stay zero."""
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    return normalize(matrix, norm="l2", axis=1, copy=True) if sp.issparse(matrix) else \
        matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


@dataclass
class _Scope:
    """The tracked topics of one (scope, window): ids, rows of the representation matrices, and which of
    them are present (big enough to report events on; the others only serve as matches, so that a topic
    hovering around the reporting size does not flicker between emerged and faded)."""

    window_start: Any
    topic_ids: np.ndarray
    rows: np.ndarray
    present: np.ndarray


@lineage_methods.register("lineage.window_match.v1")
class WindowLineage:
    def __init__(self, *, unit: str = "semester", match_threshold: float = 0.75, embedding_weight: float = 1.0,
                 min_topic_docs: int = 5, min_topic_share: float = 0.005, min_track_docs: int = 2,
                 min_window_docs: int = 200,
                 change_ratio: float = 1.5, level: float = 0.95, per_community: bool = True,
                 min_df: int = 2, resamples: int = 2000, random_state: int = 0) -> None:
        self.unit = unit
        self.match_threshold = match_threshold
        self.embedding_weight = embedding_weight
        self.min_topic_docs = min_topic_docs
        self.min_topic_share = min_topic_share
        self.min_track_docs = min_track_docs
        self.min_window_docs = min_window_docs
        self.change_ratio = change_ratio
        self.level = level
        self.per_community = per_community
        self.min_df = min_df
        self.resamples = resamples
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__init__.__kwdefaults__}  # type: ignore[union-attr]

    # -- representations -----------------------------------------------------------------------------
    def _classes(self, docs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """One class per (scope, window, topic) with its docs, and the class index of every (scope, doc)."""
        scopes = [np.full(len(docs), ALL_SCOPE, dtype=object)]
        if self.per_community:
            scopes.append(docs["community"].to_numpy(dtype=object))
        frame = pd.DataFrame({
            "doc": np.tile(np.arange(len(docs)), len(scopes)),
            "community": np.concatenate(scopes),
            "window_start": np.tile(docs["window_start"].to_numpy(), len(scopes)),
            "topic_id": np.tile(docs["topic_id"].to_numpy(dtype=np.int64), len(scopes)),
        })
        keys = ["community", "window_start", "topic_id"]
        classes = frame.groupby(keys, sort=True).size().rename("docs").reset_index()
        index = frame.merge(classes.reset_index().rename(columns={"index": "cls"})[keys + ["cls"]], on=keys)
        return classes, index[["doc", "cls"]].to_numpy()

    def _ctfidf(self, lemmas: list[str], membership: Any, all_rows: np.ndarray) -> Any:
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import CountVectorizer

        min_df = self.min_df if len(lemmas) >= 50 else 1
        counts = CountVectorizer(token_pattern=r"\S+", lowercase=False, min_df=min_df).fit_transform(lemmas)
        per_class = sp.csr_matrix(membership @ counts, dtype=np.float64)
        # idf from the corpus-wide classes only, so a community's vectors are comparable with the corpus's.
        corpus = per_class[all_rows]
        term_totals = np.asarray(corpus.sum(axis=0)).ravel()
        mean_words = corpus.sum() / max(corpus.shape[0], 1)
        idf = np.log(1 + mean_words / np.maximum(term_totals, 1))
        from sklearn.preprocessing import normalize

        return _unit_rows(normalize(per_class, norm="l1", axis=1) @ sp.diags(idf))

    def _centroids(self, embeddings: np.ndarray, membership: Any, center: np.ndarray | None = None) -> np.ndarray:
        centred = _unit_rows(embeddings - (embeddings.mean(axis=0) if center is None else center))
        sums = membership @ centred
        return _unit_rows(np.asarray(sums, dtype=np.float64))

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, docs: pd.DataFrame, embeddings: np.ndarray | None = None,
            prevalence: pd.DataFrame | None = None, center: np.ndarray | None = None) -> WindowLineage:
        """Learn ``topics_``, ``lineage_`` and ``events_``. ``prevalence`` (the topic stage's table, with
        ``window_start``, ``community``, ``topic_id``, ``share_low``, ``share_high``) supplies the intervals
        where it has them; the rest are computed here with the same seeded bootstrap. ``center``: the vector
        the embeddings are centred on before centroids are taken (the topic model's corpus mean); None: the
        mean of ``embeddings``. With a given centre each window's centroids depend on its own docs only, which
        is what lets a nightly run recompute only the windows that changed (models/lineage/incremental.py)."""
        import scipy.sparse as sp

        missing = {"community", "created_at", "topic_id", "lemmas"} - set(docs.columns)
        if missing:
            raise ValueError(f"lineage needs document columns {sorted(missing)}: pass the usable docs joined "
                             "with their topic assignments (doc_topics)")
        if embeddings is not None and len(embeddings) != len(docs):
            raise ValueError(f"{len(docs)} documents but {len(embeddings)} embeddings")
        docs = docs.reset_index(drop=True).copy()
        docs["window_start"] = window_starts(docs["created_at"], self.unit)
        classes, pairs = self._classes(docs)
        membership = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 1], pairs[:, 0])),
                                   shape=(len(classes), len(docs)))
        all_rows = np.flatnonzero(classes["community"].to_numpy() == ALL_SCOPE)
        self.centroids_ = None
        if embeddings is not None:
            with phase("lineage: topic centroids per window", len(docs), logger=log):
                self.centroids_ = self._centroids(np.asarray(embeddings, np.float64), membership, center)
        # Terms are only needed when they weigh in (no embeddings, or a weight below one).
        self.ctfidf_ = None
        if self.centroids_ is None or self.embedding_weight < 1:
            with phase("lineage: c-TF-IDF per window", len(docs), logger=log):
                self.ctfidf_ = self._ctfidf(docs["lemmas"].fillna("").tolist(), membership, all_rows)
        with phase("lineage: prevalence intervals", len(classes), unit="topic-windows", logger=log):
            self.topics_ = self._prevalence(classes, prevalence)
        self._match_all()
        return self

    def _prevalence(self, classes: pd.DataFrame, given: pd.DataFrame | None) -> pd.DataFrame:
        totals = classes.groupby(["community", "window_start"])["docs"].transform("sum").to_numpy()
        topics = classes.assign(window_docs=totals, share=classes["docs"] / totals)
        low, high = bootstrap_share_interval(topics["docs"].to_numpy(), totals, level=self.level,
                                             resamples=self.resamples, seed=self.random_state)
        topics["share_low"], topics["share_high"] = low, high
        if given is not None and {"window_start", "community", "topic_id", "share_low", "share_high"} <= set(given):
            theirs = given[["window_start", "community", "topic_id", "share_low", "share_high"]].copy()
            theirs["window_start"] = pd.to_datetime(theirs["window_start"]).to_numpy().astype("datetime64[D]")
            theirs["topic_id"] = theirs["topic_id"].astype(np.int64)
            joined = topics.merge(theirs, on=["window_start", "community", "topic_id"], how="left",
                                  suffixes=("", "_stage"))
            has = joined["share_low_stage"].notna().to_numpy()
            topics.loc[has, "share_low"] = joined.loc[has, "share_low_stage"].to_numpy()
            topics.loc[has, "share_high"] = joined.loc[has, "share_high_stage"].to_numpy()
        topics["window_label"] = [window_label(pd.Timestamp(s).date(), self.unit) for s in topics["window_start"]]
        enough = (topics["topic_id"] >= 0) & (topics["window_docs"] >= self.min_window_docs)
        topics["present"] = enough & (topics["docs"] >= self.min_topic_docs) & (topics["share"] >= self.min_topic_share)
        topics["tracked"] = enough & (topics["docs"] >= self.min_track_docs)
        return topics

    def _similarity(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        vectors = None if self.centroids_ is None else self.centroids_[before] @ self.centroids_[after].T
        if self.ctfidf_ is None:
            return vectors
        terms = np.asarray((self.ctfidf_[before] @ self.ctfidf_[after].T).todense())
        if vectors is None or self.embedding_weight == 0:
            return terms
        return self.embedding_weight * vectors + (1 - self.embedding_weight) * terms

    def _match_all(self) -> None:
        edges: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        topics = self.topics_
        compared = topics[topics["window_docs"] >= self.min_window_docs]
        # pairs of consecutive windows in each scope: windows per scope less one
        pairs = int((compared.groupby("community")["window_start"].nunique() - 1).clip(lower=0).sum())
        with Progress("lineage: matching topics of consecutive windows", total=pairs, unit="window pairs",
                      logger=log) as progress:
            for community, rows in topics.groupby("community", sort=True):
                windows = rows[rows["window_docs"] >= self.min_window_docs].groupby("window_start", sort=True)
                previous: _Scope | None = None
                for start, group in windows:
                    tracked = group[group["tracked"]]
                    current = _Scope(start, tracked["topic_id"].to_numpy(), tracked.index.to_numpy(),
                                     tracked["present"].to_numpy())
                    if previous is not None:
                        self._match_pair(community, previous, current, edges, events)
                        progress.advance(1)
                    previous = current
        edge_columns = ["community", "from_window", "from_window_start", "from_topic", "to_window",
                        "to_window_start", "to_topic", "similarity"]
        self.lineage_ = pd.DataFrame(edges, columns=edge_columns)
        event_columns = ["window_label", "window_start", "community", "topic_id", "event", "related_topics",
                         "from_window", "docs_before", "docs_after", "prevalence_before", "prevalence_after",
                         "prevalence_before_low", "prevalence_before_high", "prevalence_after_low",
                         "prevalence_after_high", "similarity", "score"]
        self.events_ = pd.DataFrame(events, columns=event_columns)
        if len(self.events_):
            self.events_ = self.events_.sort_values(["community", "window_start", "topic_id"], kind="stable") \
                .reset_index(drop=True)

    def _link(self, before: _Scope, after: _Scope, sim: np.ndarray) -> np.ndarray:
        """Edges between two windows' topics. The global model already says that one id in both windows
        is one topic, so same ids always link; a topic whose id is missing on the other side links to its
        most similar present topic there when the similarity reaches ``match_threshold`` (a split when a
        new id comes from a topic that also carries on, a merge when a vanished id joins one that does)."""
        linked = before.topic_ids[:, None] == after.topic_ids[None, :]
        if not sim.size:
            return linked
        new_after = ~np.isin(after.topic_ids, before.topic_ids)
        gone_before = ~np.isin(before.topic_ids, after.topic_ids)
        if before.present.any():
            candidates = np.where(before.present[:, None], sim, -np.inf)
            for j in np.flatnonzero(new_after):
                i = int(candidates[:, j].argmax())
                linked[i, j] |= bool(candidates[i, j] >= self.match_threshold)
        if after.present.any():
            candidates = np.where(after.present[None, :], sim, -np.inf)
            for i in np.flatnonzero(gone_before):
                j = int(candidates[i].argmax())
                linked[i, j] |= bool(candidates[i, j] >= self.match_threshold)
        return linked

    def _match_pair(self, community: str, before: _Scope, after: _Scope, edges: list, events: list) -> None:
        topics = self.topics_
        sim = self._similarity(before.rows, after.rows) if len(before.rows) and len(after.rows) else \
            np.zeros((len(before.rows), len(after.rows)))
        linked = self._link(before, after, sim)
        label_before = window_label(pd.Timestamp(before.window_start).date(), self.unit)
        label_after = window_label(pd.Timestamp(after.window_start).date(), self.unit)
        for i, j in zip(*np.nonzero(linked)):
            edges.append({"community": community, "from_window": label_before,
                          "from_window_start": before.window_start, "from_topic": int(before.topic_ids[i]),
                          "to_window": label_after, "to_window_start": after.window_start,
                          "to_topic": int(after.topic_ids[j]), "similarity": float(sim[i, j])})
        # Shares of every topic on both sides (a topic absent on one side has share 0 there).
        side = topics[(topics["community"] == community)]
        stats_before = side[side["window_start"] == before.window_start].set_index("topic_id")
        stats_after = side[side["window_start"] == after.window_start].set_index("topic_id")

        def row(topic: int, event: str, related: list[int], similarity: float, score: float) -> dict[str, Any]:
            b = stats_before.loc[topic] if topic in stats_before.index else None
            a = stats_after.loc[topic] if topic in stats_after.index else None
            return {"window_label": label_after, "window_start": after.window_start, "community": community,
                    "topic_id": int(topic), "event": event, "related_topics": [int(t) for t in related],
                    "from_window": label_before,
                    "docs_before": int(b["docs"]) if b is not None else 0,
                    "docs_after": int(a["docs"]) if a is not None else 0,
                    "prevalence_before": float(b["share"]) if b is not None else 0.0,
                    "prevalence_after": float(a["share"]) if a is not None else 0.0,
                    "prevalence_before_low": float(b["share_low"]) if b is not None else 0.0,
                    "prevalence_before_high": float(b["share_high"]) if b is not None else 0.0,
                    "prevalence_after_low": float(a["share_low"]) if a is not None else 0.0,
                    "prevalence_after_high": float(a["share_high"]) if a is not None else 0.0,
                    "similarity": float(similarity), "score": float(score)}

        strong = linked & before.present[:, None] & after.present[None, :]
        for j, topic in enumerate(after.topic_ids):
            if not after.present[j]:
                continue
            preds = np.flatnonzero(strong[:, j])
            best = float(sim[:, j].max()) if sim.shape[0] else 0.0
            if len(preds) == 0:
                weak_self = [i for i in np.flatnonzero(linked[:, j]) if before.topic_ids[i] == topic]
                # Risen from below the reporting size: new only if the rise is beyond the intervals.
                event = "emerged"
                if weak_self and self._change(row(topic, "", [], 0, 0), topic, topic, ratio=1.0) != "grew":
                    event = "persisted"
                events.append(row(topic, event, [], best, 1 - best if event == "emerged" else best))
            elif len(preds) > 1:
                edge_sims = sim[preds, j]
                events.append(row(topic, "merged", list(before.topic_ids[preds]), float(edge_sims.max()),
                                  float(edge_sims.mean())))
            elif strong[preds[0]].sum() > 1:
                i = preds[0]
                family = {int(before.topic_ids[i])} | {int(after.topic_ids[k]) for k in np.flatnonzero(strong[i])}
                siblings = sorted(family - {int(topic)})
                events.append(row(topic, "split", siblings, float(sim[i, j]), float(sim[i, j])))
            else:
                i = preds[0]
                related = [] if before.topic_ids[i] == topic else [int(before.topic_ids[i])]
                events.append(row(topic, self._change(row(topic, "", [], 0, 0), before.topic_ids[i], topic),
                                  related, float(sim[i, j]), float(sim[i, j])))
        carried_on = set(after.topic_ids[after.present].tolist())
        for i, topic in enumerate(before.topic_ids):
            if not before.present[i] or topic in carried_on:
                continue  # too small to report on, or its own id carries on and has its row above
            succ = np.flatnonzero(strong[i])
            best = float(sim[i].max()) if sim.shape[1] else 0.0
            if len(succ) == 0:
                weak_self = [k for k in np.flatnonzero(linked[i]) if after.topic_ids[k] == topic]
                # Shrunk below the reporting size: gone only if the fall is beyond the intervals.
                event = "faded"
                if weak_self and self._change(row(topic, "", [], 0, 0), topic, topic, ratio=1.0) != "declined":
                    event = "persisted"
                events.append(row(topic, event, [], best, 1 - best if event == "faded" else best))
            elif len(succ) > 1:
                events.append(row(topic, "split", [int(after.topic_ids[k]) for k in succ], best, best))
            elif strong[:, succ[0]].sum() > 1:
                events.append(row(topic, "merged", [int(after.topic_ids[succ[0]])], best, best))
            # One successor under a new id that has no other predecessor: that successor's row says it.

    def _change(self, same_id_row: dict[str, Any], before_topic: int, after_topic: int,
                ratio: float | None = None) -> str:
        """grew / declined / persisted, by the 95 % intervals and ``change_ratio`` of the two windows' shares."""
        if before_topic != after_topic:
            return "persisted"
        ratio = self.change_ratio if ratio is None else ratio
        before, after = same_id_row["prevalence_before"], same_id_row["prevalence_after"]
        if same_id_row["prevalence_after_low"] > same_id_row["prevalence_before_high"] and \
                after >= ratio * before:
            return "grew"
        if same_id_row["prevalence_after_high"] < same_id_row["prevalence_before_low"] and \
                before >= ratio * after:
            return "declined"
        return "persisted"
