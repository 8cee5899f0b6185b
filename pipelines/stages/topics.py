"""Topics stage: embed usable docs (cached), fit one BERTopic model, topics over time.

Reads the lake's ``docs`` table and what its own last run left (the saved model, ``doc_topics``, the stable-id
registry, the update history and outlier pool); returns ``topics``, ``doc_topics``, ``topic_prevalence``,
``topic_ids``, ``topic_id_history``, ``topic_outlier_pool``, ``topic_updates`` and the fitted model
(``models/topics/<run_id>/``, ``latest.json`` points at it), which the runner writes in that order; NPMI,
diversity, the number of topics and the outlier share go into the run manifest's ``scores``. The settings of
stable ids and nightly updates are the ``lineage`` section's (``Stage.uses``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from edumine import registry
from edumine.config import StrictModel
from edumine.models.topics.params import TopicModelParams
from edumine.models.topics.shared_vectors import TFIDF
from edumine.models.topics.reads import read_doc_signals, read_texts, read_texts_in_order, read_usable_docs
from edumine.progress import phase
from edumine.stages import Artefact, Output, RunInfo, Stage, StageResult

log = logging.getLogger(__name__)


# The stage's parameters for a backend when the config gives none (``params`` left out or null).
BACKEND_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {TFIDF["backend"]: TFIDF["params"]}


class EmbeddingsConfig(StrictModel):
    """Which embedding backend, its parameters, and where vectors are cached."""

    components = {"backend": ("embedders", "params")}

    backend: str = Field("embeddings.tfidf_svd.v1", description="registered embedding backend")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword parameters of the backend; left "
                                                                     "out: BACKEND_DEFAULT_PARAMS of the backend")
    cache_dir: Optional[Path] = Field(None, description="default: the lake's cache/embeddings")

    @model_validator(mode="before")
    @classmethod
    def _backend_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("params") is None:
            backend = data.get("backend", cls.model_fields["backend"].default)
            data = {**data, "params": dict(BACKEND_DEFAULT_PARAMS.get(backend, {}))}
        return data


class TopicsConfig(TopicModelParams):
    """The topic stage's settings: the topic model's parameters (``TopicModelParams``, the estimator's own
    defaults) and the stage's own; defaults chosen by benchmarks/topics_fair.py (docs/topics.md)."""

    enabled: bool = True
    kinds: list[Literal["post", "comment"]] = ["post", "comment"]
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    npmi_window: Optional[int] = Field(10, description="sliding window of NPMI (gensim's c_npmi: 10); null: docs")
    bootstrap_resamples: int = Field(2000, ge=100)

    def resolve_defaults(self, config: Any, given: dict[str, Any]) -> None:
        """No backend or params given: TF-IDF+SVD next to the theme stage's encoder where it has a contextual
        one, else TF-IDF+SVD alone (``models/topics/shared_vectors.py``)."""
        embeddings = given.get("embeddings")
        if isinstance(embeddings, dict) and ({"backend", "params"} & set(embeddings)):
            return
        from edumine.models.topics.shared_vectors import default_embeddings

        chosen = default_embeddings(getattr(config, "themes", None))
        self.embeddings = EmbeddingsConfig(**chosen, cache_dir=self.embeddings.cache_dir)


def embedding_cache_root(config: TopicsConfig, cache: Any) -> Path:
    """Where the topic stage caches vectors: the lake's ``cache/embeddings`` artefact, or
    ``topics.embeddings.cache_dir`` (recorded in the saved model's manifest, which lineage reads)."""
    cache_dir = config.embeddings.cache_dir
    return Path(cache_dir) if cache_dir else cache.path


def stage_embedder(config: TopicsConfig) -> Any:
    """The topic stage's embedding backend, with its parameters."""
    from edumine.models.embeddings.backends import make_embedder

    return make_embedder(config.embeddings.backend, **config.embeddings.params)


EMBEDDER_STATE = "embedder"  # folder in a saved topic model with a copy of the fitted embedding state


def latest_model(models: Any) -> tuple[Path | None, str | None]:
    """The saved topic model the last run pointed at (``latest.json``): its folder (when it has a manifest)
    and run id."""
    pointer = models.read_json("latest.json")
    if not pointer:
        return None, None
    folder = models.path / Path(pointer["path"]).name
    return (folder if (folder / "manifest.json").exists() else None), pointer.get("run_id")


def embed_docs(config: TopicsConfig, inputs: Any, hashes: list[str], uids: list[str], lemmas: list[str],
               run: RunInfo | None = None, folder: Path | None | bool = False) -> tuple[Any, dict[str, Any]]:
    """Vectors of these docs (``folder``: the intact latest model, when the caller has checked it already)."""
    from edumine.models.embeddings.backends import embed_with_cache
    from edumine.models.embeddings.concat import ConcatEmbedder, embed_parts_with_cache

    embedder = stage_embedder(config)
    cache_root = embedding_cache_root(config, inputs["cache/embeddings"])
    folder = intact_latest_model(inputs["models/topics"]) if folder is False else folder
    saved = (folder / EMBEDDER_STATE,) if folder is not None else ()  # a damaged copy is never loaded
    workers = {} if run is None else {"map": run.map, "workers": run.workers}  # encoding on Dask workers
    if isinstance(embedder, ConcatEmbedder):
        return embed_parts_with_cache(embedder, cache_root, uids, hashes, lemmas,
                                      read_texts_in_order(inputs["docs"], uids), state_sources=saved, **workers)
    texts = lemmas if embedder.uses == "lemmas" else read_texts_in_order(inputs["docs"], uids)
    return embed_with_cache(embedder, cache_root, uids, hashes, texts, state_sources=saved, **workers)


def doc_vectors(config: TopicsConfig, inputs: Any, prior: Any, run: RunInfo, uids: list[str], hashes: list[str],
                lemmas: list[str]) -> Any:
    """The docs' vectors for this run: at night only those of new or changed docs are read at first
    (``models/topics/nightly_vectors.py``)."""
    import numpy as np

    from edumine.config import hash_config
    from edumine.models.embeddings.concat import cache_holds, fitted_state_kept
    from edumine.models.topics.nightly_vectors import DocVectors, nightly_rows
    from edumine.models.topics.update import planned

    folder = intact_latest_model(inputs["models/topics"])  # checked once: its checksums cover megabytes

    def embed(rows: Any) -> tuple[Any, dict[str, Any]]:
        if rows is None:
            return embed_docs(config, inputs, hashes, uids, lemmas, run, folder)
        pick = rows.tolist()
        return embed_docs(config, inputs, [hashes[i] for i in pick], [uids[i] for i in pick],
                          [lemmas[i] for i in pick], run, folder)

    plan = planned(prior, run.sections["lineage"].update, hash_config(config), len(uids))
    nightly = nightly_rows(prior, plan.mode, uids, hashes) if plan.mode == "incremental" else None
    if nightly is not None:
        embedder, cache_root = stage_embedder(config), embedding_cache_root(config, inputs["cache/embeddings"])
        if not fitted_state_kept(embedder, cache_root, None if folder is None else folder / EMBEDDER_STATE):
            nightly = None  # the new docs alone would fit the state
        else:  # a lost cache is rebuilt whole (lineage reads the old docs' vectors from it)
            old = np.setdiff1d(np.arange(len(uids)), nightly["needed"])
            if not cache_holds(embedder, cache_root, [uids[i] for i in old], [hashes[i] for i in old]):
                nightly = None
    return DocVectors(embed, len(uids), nightly)


def latest_seal(models: Any) -> str | None:
    """The digest of the latest saved model's checksums, as recorded when it was saved (edumine/integrity.py)."""
    pointer = models.read_json("latest.json")
    return pointer.get("seal") if pointer else None


def intact_latest_model(models: Any) -> Path | None:
    """The latest saved model's folder when it passes its checksums, else None."""
    from edumine.models.topics.ids_rebuild import intact

    return intact(latest_model(models)[0], latest_seal(models))


def representative(model: Any, docs: Any, uids: list[str], scores: Any, n: int,
                   max_chars: int = 300) -> dict[int, tuple[list[str], list[str]]]:
    """The ``n`` documents nearest each topic's embedding, as readable clean text (read from the lake for
    these docs alone)."""
    import numpy as np

    best = {topic_id: np.flatnonzero(model.topics_ == topic_id) for topic_id in model.topic_ids()}
    best = {t: rows[np.argsort(-scores[rows], kind="stable")[:n]] for t, rows in best.items()}
    texts = read_texts(docs, [uids[i] for rows in best.values() for i in rows])
    return {t: ([texts[uids[i]][:max_chars] for i in rows], [uids[i] for i in rows]) for t, rows in best.items()}


def previous_state(inputs: Any) -> Any:
    """What the last run of this stage left, for ``fit_or_update``."""
    from edumine.models.topics.update import TopicState

    def frame(name: str, columns: list[str] | None = None) -> Any:
        table = inputs[name].read(columns=columns)
        return None if table is None else table.to_pandas()

    from edumine.models.topics.ids_rebuild import rebuild_registry, restore, restore_history

    models = inputs["models/topics"]
    folder, run = latest_model(models)
    # A lost registry, history or update log is rebuilt from what the latest intact saved model keeps
    # (ids_rebuild.py): no input could rebuild them.
    saved = intact_latest_model(models)
    history = restore_history(frame("topic_id_history"), saved)
    registry = rebuild_registry(frame("topic_ids"), history, saved, lake=str(models.path.parent.parent),
                                saved_model=(models.path / "latest.json").exists())
    return TopicState(model_dir=folder, model_run=run, model_seal=latest_seal(models),
                      updates=restore("topic_updates", frame("topic_updates"), saved),
                      pool=frame("topic_outlier_pool"),
                      doc_topics=inputs["doc_topics"].read(columns=["uid", "topic_id", "core", "run_id"]),
                      registry=registry, history=history)


def run_topics(inputs: Any, config: TopicsConfig, run: RunInfo) -> StageResult:
    import numpy as np
    import pyarrow as pa

    from edumine.config import hash_config
    from edumine.faults import kill_point
    from edumine.manifest import library_versions
    from edumine.models.topics.evaluation import (NPMI_COUNTS, NPMI_TOP_N, label_coverage, mean_npmi, npmi_counts,
                                                  topic_diversity)
    from edumine.models.topics.model import TopicModel
    from edumine.models.topics.nightly_vectors import kept_coverage, save_doc_state
    from edumine.models.topics.update import fit_or_update
    from edumine.models.topics.windows import prevalence_table
    from edumine.windows import window_label, window_starts

    unit = run.windows_unit
    table = read_usable_docs(inputs["docs"], list(config.kinds))
    if table is None or table.num_rows < 10:
        log.warning("topics: fewer than 10 usable docs; run preprocess first or add data")
        return StageResult(summary={"skipped": "fewer than 10 usable docs",
                                    "docs": 0 if table is None else table.num_rows})
    uids, lemmas = table["uid"].to_pylist(), table["lemmas"].to_pylist()
    communities = table["community"].to_pylist()
    starts = window_starts(table["created_at"], unit)

    hashes = table["text_hash"].to_pylist()
    del table  # what the stage needs is in Python lists now

    timings: dict[str, float] = {}
    started = time.perf_counter()
    prior = previous_state(inputs)
    vectors = doc_vectors(config, inputs, prior, run, uids, hashes, lemmas)
    timings["embed"] = time.perf_counter() - started

    started = time.perf_counter()
    # Refit or nightly update, topic ids stable across runs (lineage.update, lineage.stable_ids; docs/lineage.md).
    with phase("topics: model (refit or nightly update)", len(uids), logger=log):
        model, state = fit_or_update(TopicModel(**config.model_params()), uids, lemmas, vectors,
                                     state=prior, settings=run.sections["lineage"],
                                     outlier_threshold=config.resolved().outlier_threshold, run_id=run.run_id,
                                     config_hash=hash_config(config), embedding_key=vectors.info["key"],
                                     fit_params=lambda: read_doc_signals(inputs["posts"], uids))
    timings["fit"] = time.perf_counter() - started
    kill_point("topics.fit")

    started = time.perf_counter()
    topics = model.topics_
    ids = model.topic_ids()
    real_ids = [t for t in ids if t != -1]
    top = {t: model.top_terms(t, 25) for t in ids}
    analyzer = model.model_.vectorizer_model.build_analyzer()
    top_words = [[w for w, _ in top[t]] for t in real_ids]
    cooccurrence, npmi_counted = npmi_counts(prior, state.info, uids, lemmas, analyzer, top_words, config.npmi_window)
    scores = {
        "npmi": round(mean_npmi(cooccurrence.npmi_per_topic(top_words, top_n=NPMI_TOP_N)), 5),
        "diversity": round(topic_diversity(top_words, top_n=25), 5),
        "n_topics": len(real_ids),
        "outlier_share": round(float(np.mean(topics == -1)), 5),
        "docs": len(uids),
    }
    for score, moved in (("catchall_share", "catchall_"), ("link_dump_share", "link_dumps_")):
        moved = getattr(getattr(model, "inner", model), moved, None)
        if moved is not None and len(moved) == len(uids):  # a refit: the share its catch-alls (link dumps) moved
            scores[score] = round(float(np.mean(moved)), 5)
    timings["evaluate"] = time.perf_counter() - started

    started = time.perf_counter()
    if vectors.partial and -1 in ids and not getattr(model.inner.model_, "_outliers", 1):
        vectors.all()  # the outliers' closeness is to the last topic row then, which a new topic moves
    # Every doc's closeness to its topic: at night the last run's for the docs the update did not touch.
    closeness = vectors.closeness(topics, model._cosine_to_topic, model.center_, uids, prior.pool)
    embedding_info, nightly = vectors.info, vectors.nightly
    del vectors  # the raw vectors are cached on disk; 1 GB at a million docs
    with phase("topics: representative docs", len(ids), unit="topics", logger=log):
        reps = representative(model, inputs["docs"], uids, closeness, config.n_representative)
    sizes = {t: int(np.sum(topics == t)) for t in ids}
    label_words = {t: [w for w, _ in top[t][:4]] for t in real_ids}
    coverage = None if nightly is None or state.info["mode"] != "incremental" else kept_coverage(
        inputs["topics"].read(columns=["topic_id", "top_terms", "label_coverage"]), prior.doc_topics, model.core_,
        nightly["needed"], label_words)
    if coverage is None:  # coverage is over core docs: only they are counted
        vectorizer = model.model_.vectorizer_model
        core_rows = np.flatnonzero(model.core_)
        with phase("topics: label coverage", len(core_rows), logger=log):
            counts = vectorizer.transform([lemmas[row] for row in core_rows])
            coverage = label_coverage(counts, vectorizer.vocabulary_, label_words, np.asarray(topics)[core_rows],
                                      np.ones(len(core_rows), dtype=bool))
    run_id = run.run_id
    topics_table = pa.table({
        "topic_id": pa.array(ids, pa.int64()),
        "label": [model.label(t) for t in ids],
        "top_terms": [[w for w, _ in top[t][: config.top_n_words]] for t in ids],
        "term_weights": [[float(s) for _, s in top[t][: config.top_n_words]] for t in ids],
        "size": [sizes[t] for t in ids],
        "share": [sizes[t] / len(uids) for t in ids],
        "label_coverage": pa.array([coverage.get(t) for t in ids], pa.float64()),
        "representative_docs": [reps[t][0] for t in ids],
        "representative_uids": [reps[t][1] for t in ids],
        "run_id": [run_id] * len(ids),
    })
    with phase("topics: doc_topics table", len(uids), logger=log):
        start_dates = starts.astype("datetime64[D]").astype(object)
        doc_topics = pa.table({
            "uid": pa.array(uids, pa.string()), "topic_id": pa.array(topics, pa.int64()),
            "probability": pa.array(model.probabilities_, pa.float32()),
            "core": pa.array(model.core_, pa.bool_()), "community": communities,
            "window_start": pa.array(start_dates, pa.date32()),
            "window_label": [window_label(d, unit) for d in start_dates], "run_id": [run_id] * len(uids),
        })
    with phase("topics: prevalence per window and community (bootstrap intervals)", len(uids), logger=log):
        prevalence = pa.table(prevalence_table(starts, communities, topics, ids, unit,
                                               resamples=config.bootstrap_resamples, seed=config.random_state))
    prevalence = prevalence.append_column("run_id", pa.array([run_id] * prevalence.num_rows, pa.string()))
    cache_root = embedding_cache_root(config, inputs["cache/embeddings"])
    manifest = {
        "run_id": run_id, "config_hash": hash_config(config), "stage_config": json.loads(config.model_dump_json()),
        "embedding_backend": embedding_info["backend"], "embedding_key": embedding_info["key"],
        # embeddings.concat.v1 caches nothing under its own key: its parts' keys, in order (lineage reads them)
        "embedding_parts": [part["key"] for part in embedding_info.get("parts", [])] or None,
        "embedding_cache": str(cache_root),
        "corpus_size": len(uids), "windows_unit": unit, "libraries": library_versions(), "scores": scores,
    }

    def save_model(folder: Path) -> None:
        from edumine.models.embeddings.backends import keep_fitted_state
        from edumine.models.embeddings.concat import ConcatEmbedder, keep_parts_state
        from edumine.models.topics.ids_rebuild import save_copies

        model.save(folder, manifest)
        cooccurrence.save(folder / NPMI_COUNTS)
        save_doc_state(folder, uids, hashes, closeness)  # what the next nightly run keeps of the old docs
        # The vectors the model was fitted on are only reproducible with the fitted embedding state: a copy
        # stays with the model (a lost cache is then rebuilt, not refitted on another corpus).
        embedder = stage_embedder(config)
        keep = keep_parts_state if isinstance(embedder, ConcatEmbedder) else keep_fitted_state
        keep(embedder, cache_root, folder / EMBEDDER_STATE)
        # The registry and history as of this model: what a lost topic_ids is rebuilt from (ids_rebuild.py).
        save_copies(folder, {"topic_ids": state.registry if state.registry is not None else prior.registry,
                             "topic_id_history": state.history if state.history is not None else prior.history,
                             "topic_updates": state.updates})

    outputs: dict[str, Any] = {}
    if state.registry is not None:
        outputs["topic_ids"] = Output(pa.Table.from_pandas(state.registry, preserve_index=False))
    if state.history is not None:
        outputs["topic_id_history"] = Output(pa.Table.from_pandas(state.history, preserve_index=False))
    outputs.update({
        "topics": Output(topics_table), "doc_topics": Output(doc_topics), "topic_prevalence": Output(prevalence),
        # the update is recorded (pool, topic_updates) only after the model it describes is in place
        "models/topics": Artefact(save_model, relative=run_id, pointer=("latest.json", {"run_id": run_id})),
        "topic_outlier_pool": Output(state.pool), "topic_updates": Output(state.updates)})
    timings["tables"] = time.perf_counter() - started
    log.info("topics: %d docs, %d topics, NPMI %.4f, diversity %.3f, outliers %.1f%%", len(uids),
             scores["n_topics"], scores["npmi"], scores["diversity"], 100 * scores["outlier_share"])
    windows = sorted({w for w in doc_topics["window_label"].to_pylist()})

    def summary(written: dict[str, Any]) -> dict[str, Any]:
        return {"docs": len(uids), "embedding": embedding_info, "model_dir": str(written["models/topics"]["path"]),
                "scores": scores, "npmi_counted": npmi_counted, "windows": windows, "seconds": {k: round(v, 2) for k, v in timings.items()}}

    return StageResult(outputs=outputs, summary=summary, scores=scores, notes={"topic_update": state.info})


SECTION = registry.config_sections.register("topics")(TopicsConfig)
STAGE = registry.stages.register("topics")(
    Stage("topics", run=run_topics, inputs=("docs", "posts"), uses=("lineage",),
          outputs=("topics", "doc_topics", "topic_prevalence", "topic_ids", "topic_id_history",
                   "topic_updates", "topic_outlier_pool", "models/topics"), caches=("cache/embeddings",),
          section="topics",
          description="embeddings (cached), one BERTopic model, topics and prevalence per window"))
