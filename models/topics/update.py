"""Nightly topic updates without a full refit, and the choice between an update and a refit.

Nothing here reads or writes the lake: the topic stage hands ``fit_or_update`` what the last run left
(``TopicState``) and returns the tables it gets back (``TopicTables``) for the runner to write.

``plan_update`` decides, from the ``topic_updates`` history, whether this run refits the topic model
(no saved model, topic settings changed, the last refit is older than ``refit_every_days``, or the docs
added since the last refit exceed ``refit_new_share`` of the docs it saw) or updates it incrementally.

``IncrementalTopicUpdate`` (scikit-learn style) updates a fitted ``TopicModel`` with new documents:

1. each new doc goes to the topic whose embedding is nearest (cosine on the model's centred vectors,
   BERTopic's rule for a loaded model); a doc whose best cosine is below ``assign_min_similarity`` fits
   no topic and joins the outlier pool (``topic_id`` -1 for now). A doc nearer to a catch-all cluster that
   the refit dropped (``TopicModel.catchall_centroids_``, edumine.models.topics.catchall; from
   ``topics.kmeans.v3`` on also the topics its second check found diluted) than to any topic,
   at that cosine or more, is an outlier for good (``catchall_``): it is not pooled, so the spam series a
   refit dropped cannot come back as a new topic at night, nor take a stable id;
2. when the pool holds ``pool_min_docs`` docs, HDBSCAN (scikit-learn) looks for dense groups of at least
   ``new_topic_min_docs`` in it; a group whose centroid is within ``merge_min_similarity`` of an existing
   topic joins that topic, any other becomes a new topic, added to the model (topic embedding, c-TF-IDF
   row, top terms, label; ``models/topics/pool_topics.py``) as ``BERTopic.merge_models`` would add it. It is not used:
   for models without an outlier topic (k-means) it shifts every prediction by one (BERTopic 0.17.4,
   measured), and it drops the c-TF-IDF matrix that saving needs;
3. what stays unclustered stays pooled for the next night.

Learned: ``topics_`` / ``scores_`` / ``catchall_`` (for the new docs), ``resolved_`` (uid -> topic for pooled docs of
earlier nights that now have a topic), ``pool_`` (the remaining pool), ``new_topics_`` (ids added, sizes, terms).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from edumine.faults import kill_point
from edumine.models.topics.pool_topics import add_topic, pool_table

log = logging.getLogger(__name__)

UPDATES_TABLE = "topic_updates"
POOL_TABLE = "topic_outlier_pool"
UPDATE_MODES = ("auto", "incremental", "refit")


@dataclass(frozen=True)
class UpdatePlan:
    mode: str  # "refit" | "incremental"
    reason: str


@dataclass
class TopicState:
    """What the last run of the topic stage left, as the runner read it: the saved model's folder and run,
    and the ``topic_updates``, ``topic_outlier_pool``, ``doc_topics`` (uid, topic_id, core, run_id),
    ``topic_ids`` and ``topic_id_history`` tables (None where missing)."""

    model_dir: Path | None = None
    model_run: str | None = None
    model_seal: str | None = None  # digest of its checksums when saved: checked before it is loaded
    updates: pd.DataFrame | None = None
    pool: pd.DataFrame | None = None
    doc_topics: Any = None  # an Arrow table: a million rows stay compact
    registry: pd.DataFrame | None = None
    history: pd.DataFrame | None = None


@dataclass
class TopicTables:
    """What ``fit_or_update`` hands back for the stage to return: the new ``topic_ids`` and
    ``topic_id_history`` (None: unchanged), the outlier pool and the ``topic_updates`` table, and the run's
    update summary."""

    registry: pd.DataFrame | None
    history: pd.DataFrame | None
    pool: Any
    updates: Any
    info: dict[str, Any]


def plan_update(history: pd.DataFrame | None, *, mode: str = "auto", config_hash: str, model_exists: bool, n_docs: int,
                refit_every_days: float = 90.0, refit_new_share: float = 0.25,
                now: datetime | None = None) -> UpdatePlan:
    """Refit or update incrementally; the reason is for the run's manifest."""
    if mode not in UPDATE_MODES:
        raise ValueError(f"unknown topic update mode {mode!r}; use one of {', '.join(UPDATE_MODES)}")
    if not model_exists:
        return UpdatePlan("refit", "no saved topic model yet")
    if mode == "refit":
        return UpdatePlan("refit", "configured: lineage.update.mode=refit")
    refits = history[history["mode"] == "refit"] if history is not None else None
    if refits is None or refits.empty:
        return UpdatePlan("refit", "no refit recorded in topic_updates")
    last = refits.iloc[-1]
    if last["config_hash"] != config_hash:
        return UpdatePlan("refit", "topic settings changed since the last refit")
    if mode == "incremental":
        return UpdatePlan("incremental", "configured: lineage.update.mode=incremental")
    now = now or datetime.now(timezone.utc)
    age_days = (now - pd.Timestamp(last["at"]).to_pydatetime()).total_seconds() / 86400
    if age_days >= refit_every_days:
        return UpdatePlan("refit", f"last refit {age_days:.0f} days ago (refit_every_days={refit_every_days:g})")
    added = n_docs - int(last["docs_total"])
    if last["docs_total"] and added / int(last["docs_total"]) > refit_new_share:
        return UpdatePlan("refit", f"{added} docs added since the last refit, more than "
                                   f"refit_new_share={refit_new_share:g} of {int(last['docs_total'])}")
    return UpdatePlan("incremental", f"{max(added, 0)} docs added since the last refit")


def planned(state: TopicState, update: Any, config_hash: str, n_docs: int) -> UpdatePlan:
    """``plan_update`` for the last run's state and the ``lineage.update`` settings."""
    return plan_update(state.updates, mode=update.mode, config_hash=config_hash,
                       model_exists=state.model_dir is not None, n_docs=n_docs,
                       refit_every_days=update.refit_every_days, refit_new_share=update.refit_new_share)


def updates_table(stored: pd.DataFrame | None, row: dict[str, Any]) -> Any:
    """``topic_updates`` with one run's update (mode, reason, counts, new topics) appended (a row of the same
    run replaced)."""
    import pyarrow as pa

    frame = pd.DataFrame([{**row, "at": row.get("at") or datetime.now(timezone.utc)}])
    if stored is not None:
        frame = pd.concat([stored[stored["run_id"] != row["run_id"]], frame], ignore_index=True)
    return pa.Table.from_pandas(frame, preserve_index=False)


class IncrementalTopicUpdate:
    def __init__(self, *, assign_min_similarity: float = 0.3, pool_min_docs: int = 100,
                 new_topic_min_docs: int = 15, min_samples: int = 5, merge_min_similarity: float = 0.7,
                 top_n_words: int = 25) -> None:
        self.assign_min_similarity = assign_min_similarity
        self.pool_min_docs = pool_min_docs
        self.new_topic_min_docs = new_topic_min_docs
        self.min_samples = min_samples
        self.merge_min_similarity = merge_min_similarity
        self.top_n_words = top_n_words

    def fit(self, model: Any, uids: list[str], lemmas: list[str], embeddings: np.ndarray,
            pool: pd.DataFrame | None = None) -> IncrementalTopicUpdate:
        from edumine.models.topics.model import nearest_topics, normalise, topic_matrix

        if not (len(uids) == len(lemmas) == len(embeddings)):
            raise ValueError(f"{len(uids)} uids, {len(lemmas)} lemma strings and {len(embeddings)} embeddings")
        vectors = normalise(embeddings, getattr(model, "center_", None))
        matrix, ids = topic_matrix(model.model_)
        best, self.scores_ = nearest_topics(vectors, matrix, ids)
        self.topics_ = np.where(self.scores_ >= self.assign_min_similarity, best, -1)
        self.catchall_ = self._near_catchall(model, vectors)
        self.topics_[self.catchall_] = -1
        # Catch-all docs are the noise, not docs that missed a topic: pooled, they would form the spam
        # series the refit dropped again as a "new topic".
        pooled = (self.topics_ == -1) & ~self.catchall_
        fresh = pd.DataFrame({"uid": np.asarray(uids, dtype=object)[pooled],
                              "lemmas": np.asarray(lemmas, dtype=object)[pooled],
                              "vector": list(vectors[pooled])})
        known = pool if pool is not None else fresh.iloc[:0]
        self.pool_ = pd.concat([known[~known["uid"].isin(set(uids))], fresh], ignore_index=True)
        self.new_topics_: list[dict[str, Any]] = []
        self.resolved_: dict[str, int] = {}
        if len(self.pool_) >= self.pool_min_docs:
            self._cluster_pool(model, matrix, ids)
        self.model_ = model
        return self

    def _near_catchall(self, model: Any, vectors: np.ndarray) -> np.ndarray:
        """Docs whose nearest centroid, among the topics and the catch-all clusters the refit dropped
        (``TopicModel.catchall_centroids_``), is a catch-all, at a cosine of at least
        ``assign_min_similarity``: the fit's own rule for docs outside every core."""
        from edumine.models.topics.model import nearest_topics

        centroids = getattr(model, "catchall_centroids_", None)
        if centroids is None or not len(centroids) or not len(vectors):
            return np.zeros(len(vectors), dtype=bool)
        centroids = np.asarray(centroids, dtype=np.float32)
        _, closeness = nearest_topics(vectors, centroids, np.arange(len(centroids)))
        return (closeness > self.scores_) & (closeness >= self.assign_min_similarity)

    def _cluster_pool(self, model: Any, matrix: np.ndarray, ids: np.ndarray) -> None:
        from sklearn.cluster import HDBSCAN

        from edumine.models.topics.model import topic_matrix

        pool_vectors = np.vstack([np.asarray(v, np.float32) for v in self.pool_["vector"]])
        labels = HDBSCAN(min_cluster_size=self.new_topic_min_docs, min_samples=self.min_samples,
                         copy=True).fit_predict(pool_vectors)
        assigned = np.full(len(self.pool_), -1, dtype=np.int64)
        for cluster in sorted(set(labels.tolist()) - {-1}):
            members = labels == cluster
            centroid = pool_vectors[members].mean(axis=0)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
            nearest = int((matrix @ centroid).argmax()) if len(ids) else -1
            if nearest >= 0 and float(matrix[nearest] @ centroid) >= self.merge_min_similarity:
                assigned[members] = ids[nearest]
                continue
            docs = self.pool_["lemmas"][members].tolist()
            topic_id = add_topic(model, centroid, docs, top_n=self.top_n_words)
            assigned[members] = topic_id
            matrix, ids = topic_matrix(model.model_)
            self.new_topics_.append({"topic_id": topic_id, "size": int(members.sum()),
                                     "terms": [w for w, _ in model.top_terms(topic_id, 10)]})
        hit = assigned >= 0
        self.resolved_ = dict(zip(self.pool_["uid"][hit].tolist(), assigned[hit].tolist()))
        self.pool_ = self.pool_[~hit].reset_index(drop=True)
        log.info("topic update: pool of %d: %d docs got a topic, %d new topics", len(hit), int(hit.sum()),
                 len(self.new_topics_))


def incremental_state_problem(state: TopicState) -> str | None:
    """Why the saved state cannot be updated incrementally (None: it can): the update builds on the saved
    model, the ``doc_topics`` that model wrote and its outlier pool, so all three must be there and agree."""
    import pyarrow.compute as pc

    if state.model_dir is None:
        return "no saved topic model"
    if state.doc_topics is None:
        return "doc_topics is missing"
    if "run_id" not in state.doc_topics.column_names:
        return "doc_topics has no run_id"
    runs = set(pc.unique(state.doc_topics["run_id"]).to_pylist())
    if runs != {state.model_run}:
        return f"doc_topics was written by run(s) {sorted(runs)}, the saved model by run {state.model_run}"
    if state.pool is None:
        return f"{POOL_TABLE} is missing"
    return None


def _previous_assignments(doc_topics: Any) -> tuple[dict[str, int], set[str]]:
    """The last run's topic per uid, and the uids that were in their topic's core (``doc_topics.core``;
    tables written before that column existed have no core docs)."""
    if doc_topics is None:
        return {}, set()
    uids = doc_topics["uid"].to_pylist()
    has_core = "core" in doc_topics.column_names
    cores = {uid for uid, core in zip(uids, doc_topics["core"].to_pylist()) if core} if has_core else set()
    return dict(zip(uids, doc_topics["topic_id"].to_pylist())), cores


def fit_or_update(estimator: Any, uids: list[str], lemmas: list[str], vectors: np.ndarray, *,
                  state: TopicState, settings: Any, outlier_threshold: float, run_id: str, config_hash: str,
                  embedding_key: str, fit_params: Callable[[], dict[str, Any]] | None = None,
                  ) -> tuple[Any, TopicTables]:
    """The topic stage's model for this run, with stable topic ids: a full refit of ``estimator`` (its
    topics mapped to the ids of earlier runs), or a nightly update of the saved model with the docs that
    ``doc_topics`` does not hold yet. ``settings``: the ``lineage`` section (``update``, ``stable_ids``);
    ``state``: what the last run left; ``fit_params``: what a refit passes to ``estimator.fit`` besides the
    docs (called only for a refit: the link-post signals, which read the posts table). Returns the model and the
    tables to write (nothing is written here)."""
    import time

    from edumine.integrity import REPAIRS, verify
    from edumine.models.topics.ids import StableTopicModel, assign_stable_ids, remap, signatures_of
    from edumine.models.topics.model import normalise

    started = time.perf_counter()
    stable = settings.stable_ids
    plan = planned(state, settings.update, config_hash, len(uids))
    previous = None
    if plan.mode == "incremental":
        problem = incremental_state_problem(state)
        if problem is None:
            try:
                verify(state.model_dir, "the saved topic model", seal_digest=state.model_seal)
                previous = StableTopicModel.load(state.model_dir)
            except Exception as exc:  # noqa: BLE001  (a damaged model is rebuilt, not fatal)
                problem = f"the saved topic model cannot be loaded ({type(exc).__name__}: {exc})"
                REPAIRS.warning("topics: %s; the model is rebuilt by a full refit from the docs", problem)
        if problem is not None:  # rebuilt from the docs, never updated from a state that does not add up
            log.warning("topics: %s; refitting", problem)
            plan = UpdatePlan("refit", f"{problem}; refit from the docs")
    if previous is not None and previous.inner.manifest_.get("embedding_key") != embedding_key:
        plan, previous = UpdatePlan("refit", "the embedding backend changed since the saved model"), None
    info: dict[str, Any] = {"mode": plan.mode, "reason": plan.reason}
    registry = history = None
    if previous is None:
        vectors = _every_vector(vectors)
        inner = estimator.fit(lemmas, vectors, **(fit_params() if fit_params is not None else {}))
        mapping = {t: t for t in inner.topic_ids() if t >= 0}
        if stable.enabled:
            signatures = signatures_of(inner, normalise(vectors, inner.center_), inner.topics_, embedding_key)
            mapping, registry, history = assign_stable_ids(state.registry, state.history, run_id, signatures,
                                                           min_similarity=stable.min_similarity)
        kill_point("topics.refit")
        model = StableTopicModel(inner, mapping)
        model.topics_ = remap(inner.topics_, model.mapping)
        model.probabilities_ = inner.probabilities_
        model.core_ = inner.core_
        pool = pd.DataFrame({"uid": [], "lemmas": [], "vector": []})
        kept = _kept_ids(history, run_id) if stable.enabled else set()
        info.update(docs_new=len(uids), pooled=0, new_topics=[], topics=len(mapping),
                    stable_ids_kept=len(kept & set(mapping.values())))
    else:
        model, counts, pool, registry, history = _update(state, previous, uids, lemmas, vectors, embedding_key,
                                                         settings.update, outlier_threshold, run_id)
        info.update(counts)
    # Written by the runner after the saved model these rows describe (the stage returns them last): a run
    # killed in between must not leave a refit on record whose model does not exist (the next run would
    # update the old model "incrementally" with 0 new docs).
    row = {"run_id": run_id, "mode": plan.mode, "reason": plan.reason, "config_hash": config_hash,
           "docs_total": len(uids), "docs_new": info["docs_new"], "pooled": info["pooled"],
           "new_topics": [t["topic_id"] for t in info["new_topics"]],
           "seconds": round(time.perf_counter() - started, 3)}
    log.info("topics: %s (%s)", plan.mode, plan.reason)
    return model, TopicTables(registry=registry, history=history, pool=pool_table(pool),
                              updates=updates_table(state.updates, row), info=info)


def _kept_ids(history: pd.DataFrame | None, run_id: str) -> set[int]:
    """Stable ids this run kept from an earlier one (for the run summary)."""
    if history is None or history.empty:
        return set()
    this_run = history[(history["run_id"] == run_id) & (history["status"] == "kept")]
    return set(this_run["stable_id"].astype(int))


def _update(state: TopicState, previous: Any, uids: list[str], lemmas: list[str], vectors: np.ndarray,
            embedding_key: str, settings: Any, outlier_threshold: float, run_id: str) -> tuple:
    from edumine.models.topics.ids import StableTopicModel, add_stable_ids, remap, signatures_of
    from edumine.models.topics.model import normalise
    from edumine.models.topics.nightly_vectors import DocVectors

    known, cores = _previous_assignments(state.doc_topics)
    pool = state.pool
    pooled_before = set(pool["uid"]) if pool is not None else set()
    fresh = np.array([uid not in known for uid in uids], dtype=bool)
    inner = previous.inner
    # Only the new docs' vectors (and the pool's) when the last run kept its doc state (nightly_vectors.py).
    lazy = vectors if isinstance(vectors, DocVectors) and vectors.partial else None
    fresh_vectors = lazy.rows(np.flatnonzero(fresh)) if lazy is not None else _every_vector(vectors)[fresh]
    updater = IncrementalTopicUpdate(
        assign_min_similarity=assign_threshold(settings, outlier_threshold), pool_min_docs=settings.pool_min_docs,
        new_topic_min_docs=settings.new_topic_min_docs, merge_min_similarity=settings.merge_min_similarity,
    ).fit(inner, [u for u, f in zip(uids, fresh) if f], [t for t, f in zip(lemmas, fresh) if f], fresh_vectors,
          pool=pool)
    mapping = dict(previous.mapping)
    registry = history = None
    if updater.new_topics_:
        added = [t["topic_id"] for t in updater.new_topics_]
        inner_topics = np.full(len(uids), -1, dtype=np.int64)
        inner_topics[fresh] = updater.topics_
        for row, uid in enumerate(uids):
            if uid in updater.resolved_:
                inner_topics[row] = updater.resolved_[uid]
        rows = np.flatnonzero(inner_topics >= 0)  # only these docs count in a signature
        normalised = lazy.normalised(rows, inner.center_, uids, pool) if lazy is not None \
            else normalise(_every_vector(vectors)[rows], inner.center_)
        signatures = signatures_of(inner, normalised, inner_topics[rows], embedding_key)
        keep = [i for i, t in enumerate(signatures.model_ids) if t in added]
        signatures.model_ids = [signatures.model_ids[i] for i in keep]
        signatures.terms = [signatures.terms[i] for i in keep]
        signatures.centroids = signatures.centroids[keep] if signatures.centroids is not None else None
        signatures.labels = [signatures.labels[i] for i in keep] if signatures.labels else None
        signatures.sizes = [signatures.sizes[i] for i in keep] if signatures.sizes else None
        added_ids, registry, history = add_stable_ids(state.registry, state.history, run_id, signatures)
        mapping.update(added_ids)
    model = StableTopicModel(inner, mapping)
    new_stable = remap(updater.topics_, model.mapping)
    topics = np.empty(len(uids), dtype=np.int64)
    topics[fresh] = new_stable
    for row in np.flatnonzero(~fresh):
        uid = uids[row]
        topics[row] = model.mapping[updater.resolved_[uid]] if uid in updater.resolved_ else int(known[uid])
    model.topics_ = topics
    # New and re-pooled docs were assigned by similarity: only docs of the last refit's cores stay core.
    model.core_ = np.array([uid in cores and uid not in updater.resolved_ for uid in uids], dtype=bool)
    if lazy is not None:  # the last run's closeness of the docs the update did not touch
        model.probabilities_ = np.where(topics >= 0, lazy.closeness(topics, model._cosine_to_topic, inner.center_,
                                                                    uids, pool), 0).astype(np.float32)
    else:
        model.probabilities_ = _closeness(inner, normalise(_every_vector(vectors), inner.center_),
                                          remap(topics, model.inverse))
    new_topics = [{**t, "topic_id": model.mapping[t["topic_id"]]} for t in updater.new_topics_]
    return model, {"docs_new": int(fresh.sum()), "pooled": int(len(updater.pool_)),
                   "catchall": int(updater.catchall_.sum()),
                   "resolved_from_pool": int(len(set(updater.resolved_) & pooled_before)),
                   "new_topics": new_topics}, updater.pool_, registry, history


def _every_vector(vectors: Any) -> np.ndarray:  # an array as given, or all of a DocVectors (read now if not yet)
    return vectors.all() if hasattr(vectors, "all") and not isinstance(vectors, np.ndarray) else vectors


def assign_threshold(update: Any, outlier_threshold: float) -> float:
    """The cosine a new doc needs to join a topic at night: ``lineage.update.assign_min_similarity``, or when
    that is null the rule the fit itself assigned docs by (``topics.outlier_threshold``)."""
    chosen = update.assign_min_similarity
    return float(outlier_threshold if chosen is None else chosen)


def _closeness(inner: Any, vectors: np.ndarray, topics: np.ndarray) -> np.ndarray:
    """Cosine of each doc to its topic's embedding (the model's own rule, in blocks); 0 for docs in no topic.
    Topics added at night get the next id and the next embedding row (``add_topic``), so ids stay rows."""
    return np.where(topics >= 0, inner._cosine_to_topic(vectors, topics), 0).astype(np.float32)
