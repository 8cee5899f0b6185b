"""Stable topic ids across runs: a topic keeps its id when a later run finds it again.

A topic model numbers its topics afresh on every fit. ``StableTopicIds`` matches the topics of a new fit
to the lake's topic-id registry (every id ever given, with the topic's centroid and top terms when last
seen) by optimal one-to-one assignment (Hungarian) on cosine similarity, and keeps a match when it reaches
``min_similarity``; every other topic gets a new id, one above the highest ever given (ids are never
reused). Centroids are compared when both sides come from the same embedding backend, else the top-term
weights are (a cosine over the union of both term lists, so vocabularies may differ).

Tables (the topic stage returns them, the runner writes them atomically on every run):

- ``topic_ids/part-0.parquet``: one row per stable id: ``stable_id``, ``label``, ``terms``, ``weights``,
  ``centroid``, ``embedding_key``, ``size``, ``first_run``, ``last_run``, ``active``.
- ``topic_id_history/part-0.parquet``: one row per run and topic: ``run_id``, ``model_topic``,
  ``stable_id``, ``similarity``, ``status`` (``new`` | ``kept`` | ``retired``), ``label``, ``size``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

REGISTRY_TABLE = "topic_ids"
HISTORY_TABLE = "topic_id_history"


@dataclass
class TopicSignatures:
    """What identifies the topics of one fit: ids, centroids (or None), top terms with weights."""

    model_ids: list[int]
    terms: list[list[tuple[str, float]]]
    centroids: np.ndarray | None = None
    embedding_key: str = ""
    labels: list[str] | None = None
    sizes: list[int] | None = None


def term_similarity(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> float:
    weights_a, weights_b = dict(a), dict(b)
    dot = sum(w * weights_b.get(term, 0.0) for term, w in weights_a.items())
    norm = np.sqrt(sum(w * w for w in weights_a.values()) * sum(w * w for w in weights_b.values()))
    return float(dot / norm) if norm else 0.0


class StableTopicIds:
    def __init__(self, *, min_similarity: float = 0.7, top_n: int = 25) -> None:
        self.min_similarity = min_similarity
        self.top_n = top_n

    def _similarity(self, new: TopicSignatures, previous: pd.DataFrame) -> np.ndarray:
        sim = np.zeros((len(new.model_ids), len(previous)))
        comparable = np.zeros(len(previous), dtype=bool)
        if new.centroids is not None and len(previous):
            comparable = (previous["embedding_key"].to_numpy() == new.embedding_key) & \
                         np.array([c is not None and len(c) == new.centroids.shape[1] for c in previous["centroid"]])
        if comparable.any():
            old = np.vstack([np.asarray(c, dtype=np.float64) for c in previous["centroid"][comparable]])
            old /= np.maximum(np.linalg.norm(old, axis=1, keepdims=True), 1e-12)
            fresh = new.centroids / np.maximum(np.linalg.norm(new.centroids, axis=1, keepdims=True), 1e-12)
            sim[:, comparable] = fresh @ old.T
        for k in np.flatnonzero(~comparable):
            old_terms = list(zip(previous["terms"].iloc[k], previous["weights"].iloc[k]))
            for i, terms in enumerate(new.terms):
                sim[i, k] = term_similarity(terms[: self.top_n], old_terms[: self.top_n])
        return sim

    def fit(self, new: TopicSignatures, previous: pd.DataFrame | None, run_id: str) -> StableTopicIds:
        """Learn ``mapping_`` (model id -> stable id), ``similarity_``, ``registry_`` and ``history_``."""
        from scipy.optimize import linear_sum_assignment

        previous = previous if previous is not None else empty_registry()
        previous = previous.sort_values("stable_id").reset_index(drop=True)
        sim = self._similarity(new, previous)
        mapping: dict[int, int] = {}
        similarity: dict[int, float] = {}
        if sim.size:
            rows, cols = linear_sum_assignment(-sim)
            for i, k in zip(rows, cols):
                if sim[i, k] >= self.min_similarity:
                    mapping[new.model_ids[i]] = int(previous["stable_id"].iloc[k])
                    similarity[new.model_ids[i]] = float(sim[i, k])
        next_id = int(previous["stable_id"].max()) + 1 if len(previous) else 0
        status = {}
        for model_id in sorted(new.model_ids):
            if model_id in mapping:
                status[model_id] = "kept"
                continue
            mapping[model_id] = next_id
            similarity[model_id] = float(sim[new.model_ids.index(model_id)].max()) if sim.shape[1] else 0.0
            status[model_id] = "new"
            next_id += 1
        self.mapping_, self.similarity_, self.status_ = mapping, similarity, status
        self.registry_ = self._registry(new, previous, run_id)
        self.history_ = self._history(new, previous, run_id)
        return self

    def _registry(self, new: TopicSignatures, previous: pd.DataFrame, run_id: str) -> pd.DataFrame:
        rows = {int(r.stable_id): {**r._asdict(), "active": False} for r in previous.itertuples(index=False)}
        for position, model_id in enumerate(new.model_ids):
            stable = self.mapping_[model_id]
            terms = new.terms[position][: self.top_n]
            rows[stable] = {
                "stable_id": stable,
                "label": (new.labels or [""] * len(new.model_ids))[position],
                "terms": [t for t, _ in terms], "weights": [float(w) for _, w in terms],
                "centroid": None if new.centroids is None else new.centroids[position].astype(np.float32).tolist(),
                "embedding_key": new.embedding_key,
                "size": int((new.sizes or [0] * len(new.model_ids))[position]),
                "first_run": rows.get(stable, {}).get("first_run") or run_id, "last_run": run_id, "active": True,
            }
        return pd.DataFrame([rows[k] for k in sorted(rows)], columns=REGISTRY_COLUMNS)

    def _history(self, new: TopicSignatures, previous: pd.DataFrame, run_id: str) -> pd.DataFrame:
        rows = []
        for position, model_id in enumerate(new.model_ids):
            rows.append({"run_id": run_id, "model_topic": int(model_id), "stable_id": self.mapping_[model_id],
                         "similarity": self.similarity_[model_id], "status": self.status_[model_id],
                         "label": (new.labels or [""] * len(new.model_ids))[position],
                         "size": int((new.sizes or [0] * len(new.model_ids))[position])})
        kept = set(self.mapping_.values())
        for r in previous.itertuples(index=False):
            if r.active and int(r.stable_id) not in kept:
                rows.append({"run_id": run_id, "model_topic": None, "stable_id": int(r.stable_id),
                             "similarity": None, "status": "retired", "label": r.label, "size": 0})
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


REGISTRY_COLUMNS = ["stable_id", "label", "terms", "weights", "centroid", "embedding_key", "size", "first_run",
                    "last_run", "active"]
HISTORY_COLUMNS = ["run_id", "model_topic", "stable_id", "similarity", "status", "label", "size"]


def empty_registry() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in REGISTRY_COLUMNS})


def registry_frame(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ``topic_ids`` table as read (a DataFrame), with its list columns as Python lists."""
    if frame is not None:
        frame = frame.copy()
        for column in ("terms", "weights", "centroid"):
            frame[column] = [None if v is None else list(v) for v in frame[column]]
    return frame


def signatures_of(model: Any, vectors: np.ndarray, topics: np.ndarray, embedding_key: str,
                  top_n: int = 25) -> TopicSignatures:
    """Signatures of a fitted ``TopicModel``: centroids of its docs' (normalised) vectors, top terms."""
    ids = sorted(int(t) for t in set(np.asarray(topics).tolist()) if t >= 0)
    centroids = np.vstack([vectors[topics == t].mean(axis=0) for t in ids]) if ids else None
    return TopicSignatures(model_ids=ids, terms=[model.top_terms(t, top_n) for t in ids], centroids=centroids,
                           embedding_key=embedding_key, labels=[model.label(t) for t in ids],
                           sizes=[int((topics == t).sum()) for t in ids])


def assign_stable_ids(registry: pd.DataFrame | None, history: pd.DataFrame | None, run_id: str,
                      signatures: TopicSignatures, *, min_similarity: float = 0.7) \
        -> tuple[dict[int, int], pd.DataFrame, pd.DataFrame]:
    """Map a fit's topic ids to stable ids; returns the mapping (``-1``, the outliers, always maps to itself)
    and the new ``topic_ids`` and ``topic_id_history`` tables (``registry`` and ``history``: the stored ones)."""
    matcher = StableTopicIds(min_similarity=min_similarity).fit(signatures, registry_frame(registry), run_id)
    new_history = matcher.history_
    if history is not None:
        new_history = pd.concat([history[history["run_id"] != run_id], new_history], ignore_index=True)
    new_history["model_topic"] = new_history["model_topic"].astype("Int64")
    new_history["similarity"] = new_history["similarity"].astype(float)
    counts = pd.Series(matcher.status_).value_counts().to_dict()
    log.info("stable topic ids: %s", counts)
    return {-1: -1, **matcher.mapping_}, matcher.registry_, new_history


def remap(topics: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Topic ids of documents through ``mapping`` (ids missing from it are an error, not a silent -1)."""
    topics = np.asarray(topics)
    unknown = sorted(set(topics.tolist()) - set(mapping))
    if unknown:
        raise KeyError(f"topic ids {unknown[:10]} have no stable id: map the fit's topics first")
    lookup = np.vectorize(mapping.__getitem__, otypes=[np.int64])
    return lookup(topics) if len(topics) else topics.astype(np.int64)


def add_stable_ids(registry: pd.DataFrame | None, history: pd.DataFrame | None, run_id: str,
                   signatures: TopicSignatures) -> tuple[dict[int, int], pd.DataFrame | None, pd.DataFrame | None]:
    """Fresh stable ids for topics added by a nightly update (they are new by construction: the update
    only adds groups unlike every existing topic); nothing is retired. Returns the mapping and the new
    ``topic_ids`` and ``topic_id_history`` tables (None when no topic was added)."""
    registry = registry_frame(registry)
    registry = registry if registry is not None else empty_registry()
    next_id = int(registry["stable_id"].max()) + 1 if len(registry) else 0
    rows, added, mapping = [], [], {}
    for position, model_id in enumerate(signatures.model_ids):
        terms = signatures.terms[position]
        mapping[model_id] = next_id + position
        label = (signatures.labels or [""] * len(signatures.model_ids))[position]
        size = int((signatures.sizes or [0] * len(signatures.model_ids))[position])
        rows.append({"stable_id": next_id + position, "label": label, "terms": [t for t, _ in terms],
                     "weights": [float(w) for _, w in terms],
                     "centroid": None if signatures.centroids is None else
                     signatures.centroids[position].astype(np.float32).tolist(),
                     "embedding_key": signatures.embedding_key, "size": size, "first_run": run_id,
                     "last_run": run_id, "active": True})
        added.append({"run_id": run_id, "model_topic": int(model_id), "stable_id": next_id + position,
                      "similarity": None, "status": "new", "label": label, "size": size})
    if not rows:
        return mapping, None, None
    registry = pd.concat([registry, pd.DataFrame(rows, columns=REGISTRY_COLUMNS)], ignore_index=True)
    frame = pd.DataFrame(added, columns=HISTORY_COLUMNS)
    frame = frame if history is None else pd.concat([history, frame], ignore_index=True)
    frame["model_topic"] = frame["model_topic"].astype("Int64")
    frame["similarity"] = frame["similarity"].astype(float)
    return mapping, registry, frame


class StableTopicModel:
    """A fitted ``TopicModel`` seen through stable ids: the same reading interface (``topics_``,
    ``probabilities_``, ``topic_ids``, ``top_terms``, ``label``, ``transform``, ``save``), with every topic id
    translated, so that the topic stage writes stable ids without knowing about them. The inner model and
    its BERTopic keep their own contiguous ids (BERTopic's cosine transform needs them)."""

    MAPPING_FILE = "stable_ids.json"

    def __init__(self, inner: Any, mapping: dict[int, int]) -> None:
        self.inner = inner
        self.mapping = {-1: -1, **{int(k): int(v) for k, v in mapping.items()}}
        self.inverse = {v: k for k, v in self.mapping.items()}

    model_ = property(lambda self: self.inner.model_)
    center_ = property(lambda self: getattr(self.inner, "center_", None))
    n_docs_ = property(lambda self: getattr(self.inner, "n_docs_", None))

    def topic_ids(self) -> list[int]:
        ids = {self.mapping[t] for t in self.inner.topic_ids()}
        # Docs pooled by a nightly update are outliers (-1) even when the model itself has no outlier topic.
        if -1 in set(np.asarray(getattr(self, "topics_", [])).tolist()):
            ids.add(-1)
        return sorted(ids)

    def top_terms(self, topic_id: int, n: int | None = None) -> list[tuple[str, float]]:
        return self.inner.top_terms(self.inverse[topic_id], n)

    def label(self, topic_id: int) -> str:
        return self.inner.label(self.inverse[topic_id])

    def _cosine_to_topic(self, vectors: np.ndarray, topics: np.ndarray) -> np.ndarray:
        return self.inner._cosine_to_topic(vectors, remap(topics, self.inverse))

    def transform(self, lemmas: list[str], embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        topics, scores = self.inner.transform(lemmas, embeddings)
        return remap(topics, self.mapping), scores

    def save(self, folder: Path, manifest: dict[str, Any]) -> None:
        import json

        self.inner.save(folder, manifest)
        text = json.dumps({str(k): v for k, v in sorted(self.mapping.items())}, indent=1) + "\n"
        (Path(folder) / self.MAPPING_FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> StableTopicModel:
        import json

        from edumine.models.topics.model import TopicModel

        inner = TopicModel.load(folder)
        path = Path(folder) / cls.MAPPING_FILE
        mapping = {int(k): int(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()} \
            if path.exists() else {t: t for t in inner.topic_ids()}
        return cls(inner, mapping)
