"""Topics stage (order 30): embed usable docs (cached), fit one BERTopic model, write topics over time.

Reads the lake's ``docs`` table; writes ``topics``, ``doc_topics``, ``topic_prevalence`` and
``topic_windows`` (per-window terms and centroids, for lineage), saves the fitted model under
``<lake>/models/topics/<run_id>/`` (``latest.json`` points at it) and puts NPMI, diversity, the number of
topics and the outlier share into the run manifest's ``scores``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, model_validator

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import Stage

log = logging.getLogger(__name__)


# The stage's parameters for a backend when the config gives none (``params`` left out or null). Unigram
# TF-IDF embeds ~1.8x faster than the backend's own 1-2 grams at 10 k docs (~11x at 100 k) at the same topic
# quality (docs/topics.md).
BACKEND_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"embeddings.tfidf_svd.v1": {"ngram_max": 1}}


class EmbeddingsConfig(StrictModel):
    """Which embedding backend, its parameters, and where vectors are cached."""

    components = {"backend": ("embedders", "params")}

    backend: str = Field("embeddings.tfidf_svd.v1", description="registered embedding backend")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword parameters of the backend; left "
                                                                     "out: BACKEND_DEFAULT_PARAMS of the backend")
    cache_dir: Optional[Path] = Field(None, description="default <lake>/_cache/embeddings")

    @model_validator(mode="before")
    @classmethod
    def _backend_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("params") is None:
            backend = data.get("backend", cls.model_fields["backend"].default)
            data = {**data, "params": dict(BACKEND_DEFAULT_PARAMS.get(backend, {}))}
        return data


class TopicsConfig(StrictModel):
    """BERTopic over the usable docs; defaults chosen by benchmarks/topics_benchmark.py (docs/topics.md)."""

    enabled: bool = True
    kinds: list[Literal["post", "comment"]] = ["post", "comment"]
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    reduction: Literal["umap", "pca", "none"] = "none"
    n_components: int = Field(10, ge=2)
    umap_neighbors: int = Field(15, ge=2)
    clustering: Literal["hdbscan", "kmeans"] = "kmeans"
    n_clusters: Union[Annotated[int, Field(ge=2)], Literal["auto"]] = Field(
        "auto", description="topics for kmeans; auto: the square root of the number of docs, 10 to 500")
    kmeans_trim: float = Field(0.5, ge=0, lt=1, description="share of each k-means cluster, farthest from its "
                                                             "centre, left out of the cluster's core (the docs "
                                                             "its topic words and embedding come from)")
    min_cluster_size: int = Field(15, ge=2, description="smallest topic for hdbscan")
    min_samples: Optional[int] = None
    center: bool = Field(True, description="subtract the corpus mean vector before clustering")
    min_df: int = Field(2, ge=1, description="topic-word vocabulary: a term must occur in at least this many "
                                             "topics (BERTopic counts over each topic's joined documents, the "
                                             "outlier topic included); 2 is what BERTopic's default comparator uses")
    max_df: float = Field(0.5, gt=0, le=1, description="and in at most this share of the topics")
    ngram_max: int = Field(1, ge=1, le=3)
    top_n_words: int = Field(10, ge=3)
    reduce_frequent_words: bool = False
    bm25_weighting: bool = Field(False, description="c-TF-IDF with BERTopic's BM25 weighting (measured: lower "
                                                     "NPMI on the fair benchmark, docs/topics.md)")
    catchall_coverage: float = Field(0.3, ge=0, lt=1, description="topics whose label words are in fewer than "
                                     "this share of their core docs are catch-alls (spam series, link dumps, "
                                     "near-empty texts): their docs go to the outliers before topics are "
                                     "ranked (edumine.models.topics.catchall); 0 keeps them")
    outliers: Literal["none", "nearest", "embeddings", "c-tf-idf", "distributions"] = Field(
        "nearest", description="docs outside every core: none: they stay outliers; nearest: each joins its "
                               "nearest topic if the cosine is at least outlier_threshold, topic words stay "
                               "the cores'; embeddings|c-tf-idf|distributions: BERTopic's reduce_outliers, "
                               "then topic words from all assigned docs")
    outlier_threshold: float = Field(0.25, ge=-1, le=1, description="cosine a doc needs to join a topic "
                                     "(nearest, embeddings); nightly updates use it too (lineage.update)")
    n_representative: int = Field(3, ge=1)
    random_state: int = 0
    npmi_window: Optional[int] = Field(10, description="sliding window of NPMI (gensim's c_npmi: 10); null: docs")
    bootstrap_resamples: int = Field(2000, ge=100)

    def model_params(self) -> dict[str, Any]:
        skip = {"enabled", "kinds", "embeddings", "npmi_window", "bootstrap_resamples"}
        return {name: getattr(self, name) for name in type(self).model_fields if name not in skip}


def _docs_dataset(lake: Any) -> Any:
    import pyarrow.dataset as ds

    root = lake.table_path("docs")
    if not any(root.glob("*/*/*/*.parquet")):
        return None
    return ds.dataset(root, format="parquet", partitioning="hive")


def read_usable_docs(lake: Any, kinds: list[str]) -> Any:
    """Usable docs of the given kinds with their community, sorted by uid (a stable order for the fit).
    The clean text is left out: it is half the table at a million docs, and ``read_texts`` fetches the few
    texts the stage shows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = _docs_dataset(lake)
    if dataset is None:
        return None
    table = dataset.to_table(columns=["uid", "kind", "created_at", "lemmas", "text_hash", "community"],
                             filter=(ds.field("usable") == True) & ds.field("kind").isin(kinds))  # noqa: E712
    table = table.take(pc.sort_indices(table, sort_keys=[("uid", "ascending")]))
    pa.default_memory_pool().release_unused()  # the unsorted copy's memory goes back to the system
    return table


def read_texts(lake: Any, uids: list[str]) -> dict[str, str]:
    """Clean text of the given docs, by uid."""
    import pyarrow.dataset as ds

    table = _docs_dataset(lake).to_table(columns=["uid", "text"], filter=ds.field("uid").isin(sorted(set(uids))))
    return dict(zip(table["uid"].to_pylist(), table["text"].to_pylist()))


def embedding_cache_root(config: TopicsConfig, lake: Any) -> Path:
    """Where the topic stage caches vectors (recorded in the saved model's manifest, which lineage reads)."""
    cache_dir = config.embeddings.cache_dir
    return Path(cache_dir) if cache_dir else Path(lake.root) / "cache" / "embeddings"


def stage_embedder(config: TopicsConfig, lake: Any) -> tuple[Any, Path]:
    """The topic stage's embedding backend, with its parameters, and its cache folder."""
    from edumine.models.embeddings.backends import make_embedder

    settings = config.embeddings
    return make_embedder(settings.backend, **settings.params), embedding_cache_root(config, lake)


def embed_docs(config: TopicsConfig, lake: Any, table: Any, uids: list[str], lemmas: list[str]) \
        -> tuple[Any, dict[str, Any]]:
    from edumine.models.embeddings.backends import embed_with_cache
    from edumine.models.embeddings.concat import ConcatEmbedder, embed_parts_with_cache

    embedder, cache_root = stage_embedder(config, lake)
    hashes = table["text_hash"].to_pylist()
    if isinstance(embedder, ConcatEmbedder):
        return embed_parts_with_cache(embedder, cache_root, uids, hashes, lemmas, read_texts_in_order(lake, uids))
    inputs = lemmas if embedder.uses == "lemmas" else read_texts_in_order(lake, uids)
    return embed_with_cache(embedder, cache_root, uids, hashes, inputs, state_sources=saved_embedder_state(lake))


def saved_embedder_state(lake: Any) -> tuple[Path, ...]:
    """The fitted embedding state kept by the latest saved topic model, when that model passes its checksums
    (a damaged copy is never loaded: without it the state is refitted, under another key, so a refit)."""
    from edumine.models.topics.ids_rebuild import latest_saved_model

    folder = latest_saved_model(lake)
    return (folder / EMBEDDER_STATE,) if folder is not None else ()


EMBEDDER_STATE = "embedder"  # folder in a saved topic model with a copy of the fitted embedding state


def save_embedder_state(config: TopicsConfig, lake: Any, model_dir: Path) -> None:
    """Keep the fitted embedding state with the model: the vectors the model was fitted on are only
    reproducible with it (a lost cache is then rebuilt, not refitted on another corpus)."""
    import shutil

    embedder, cache_root = stage_embedder(config, lake)
    state = Path(cache_root) / embedder.base_key / "state.pkl"
    if embedder.needs_fit and state.exists():
        (Path(model_dir) / EMBEDDER_STATE).mkdir(parents=True, exist_ok=True)
        shutil.copy2(state, Path(model_dir) / EMBEDDER_STATE / "state.pkl")


def read_texts_in_order(lake: Any, uids: list[str]) -> list[str]:
    """Clean texts for backends that embed text rather than lemmas, in the order of ``uids``."""
    texts = read_texts(lake, uids)
    return [texts[uid] for uid in uids]


def representative(model: Any, lake: Any, uids: list[str], scores: Any, n: int,
                   max_chars: int = 300) -> dict[int, tuple[list[str], list[str]]]:
    """The ``n`` documents nearest each topic's embedding, as readable clean text (read from the lake for
    these docs alone)."""
    import numpy as np

    best = {topic_id: np.flatnonzero(model.topics_ == topic_id) for topic_id in model.topic_ids()}
    best = {t: rows[np.argsort(-scores[rows], kind="stable")[:n]] for t, rows in best.items()}
    texts = read_texts(lake, [uids[i] for rows in best.values() for i in rows])
    return {t: ([texts[uids[i]][:max_chars] for i in rows], [uids[i] for i in rows]) for t, rows in best.items()}


def run_topics(ctx: Any) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa

    from edumine import integrity
    from edumine.config import hash_config
    from edumine.lake import write_parquet_atomic
    from edumine.manifest import library_versions
    from edumine.models.topics.evaluation import label_coverage, npmi_coherence, topic_diversity
    from edumine.models.topics.windows import prevalence_table, window_representations
    from edumine.models.topics.model import TopicModel, normalise
    from edumine.windows import window_label, window_starts

    config: TopicsConfig = ctx.config.topics
    unit = ctx.config.windows.unit
    table = read_usable_docs(ctx.lake, list(config.kinds))
    if table is None or table.num_rows < 10:
        log.warning("topics: fewer than 10 usable docs; run preprocess first or add data")
        return {"skipped": "fewer than 10 usable docs", "docs": 0 if table is None else table.num_rows}
    uids, lemmas = table["uid"].to_pylist(), table["lemmas"].to_pylist()
    communities = table["community"].to_pylist()
    starts = window_starts(table["created_at"], unit)

    timings: dict[str, float] = {}
    started = time.perf_counter()
    vectors, embedding_info = embed_docs(config, ctx.lake, table, uids, lemmas)
    timings["embed"] = time.perf_counter() - started
    del table  # what the stage needs is in Python lists now

    started = time.perf_counter()
    # Refit or nightly update, topic ids stable across runs (lineage.update, lineage.stable_ids; docs/lineage.md).
    from edumine.faults import kill_point
    from edumine.manifest import write_json_atomic
    from edumine.models.topics.update import commit_update, fit_or_update

    model = fit_or_update(ctx, TopicModel(**config.model_params()), uids, lemmas, vectors,
                          config_hash=hash_config(config), embedding_key=embedding_info["key"])
    timings["fit"] = time.perf_counter() - started
    kill_point("topics.fit")

    started = time.perf_counter()
    topics = model.topics_
    ids = model.topic_ids()
    real_ids = [t for t in ids if t != -1]
    top = {t: model.top_terms(t, 25) for t in ids}
    analyzer = model.model_.vectorizer_model.build_analyzer()
    tokenised = (analyzer(text) for text in lemmas)  # a generator: scored chunk by chunk
    top_words = [[w for w, _ in top[t]] for t in real_ids]
    scores = {
        "npmi": round(npmi_coherence(top_words, tokenised, top_n=10, window_size=config.npmi_window), 5),
        "diversity": round(topic_diversity(top_words, top_n=25), 5),
        "n_topics": len(real_ids),
        "outlier_share": round(float(np.mean(topics == -1)), 5),
        "docs": len(uids),
    }
    catchall = getattr(getattr(model, "inner", model), "catchall_", None)
    if catchall is not None and len(catchall) == len(uids):  # a refit: the share its catch-alls moved
        scores["catchall_share"] = round(float(np.mean(catchall)), 5)
    timings["evaluate"] = time.perf_counter() - started

    started = time.perf_counter()
    normalised = normalise(vectors, model.center_)
    del vectors  # the raw vectors are cached on disk; 1 GB at a million docs
    closeness = model._cosine_to_topic(normalised, topics)
    reps = representative(model, ctx.lake, uids, closeness, config.n_representative)
    sizes = {t: int(np.sum(topics == t)) for t in ids}
    vectorizer = model.model_.vectorizer_model
    counts = vectorizer.transform(lemmas)
    coverage = label_coverage(counts, vectorizer.vocabulary_, {t: [w for w, _ in top[t][:4]] for t in real_ids},
                              topics, model.core_)
    run_id = ctx.run_id
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
    start_dates = starts.astype("datetime64[D]").astype(object)
    doc_topics = pa.table({
        "uid": pa.array(uids, pa.string()), "topic_id": pa.array(topics, pa.int64()),
        "probability": pa.array(model.probabilities_, pa.float32()),
        "core": pa.array(model.core_, pa.bool_()), "community": communities,
        "window_start": pa.array(start_dates, pa.date32()),
        "window_label": [window_label(d, unit) for d in start_dates], "run_id": [run_id] * len(uids),
    })
    prevalence = pa.table(prevalence_table(starts, communities, topics, ids, unit,
                                           resamples=config.bootstrap_resamples, seed=config.random_state))
    prevalence = prevalence.append_column("run_id", pa.array([run_id] * prevalence.num_rows, pa.string()))
    for name, data in (("topics", topics_table), ("doc_topics", doc_topics), ("topic_prevalence", prevalence)):
        write_parquet_atomic(data, ctx.lake.table_path(name) / "part-0.parquet")

    kill_point("topics.write")
    model_dir = ctx.lake.root / "models" / "topics" / run_id
    model.save(model_dir, {
        "run_id": run_id, "config_hash": hash_config(config), "stage_config": json.loads(config.model_dump_json()),
        "embedding_backend": embedding_info["backend"], "embedding_key": embedding_info["key"],
        # embeddings.concat.v1 caches nothing under its own key: its parts' keys, in order (lineage reads them)
        "embedding_parts": [part["key"] for part in embedding_info.get("parts", [])] or None,
        "embedding_cache": str(embedding_cache_root(config, ctx.lake)),
        "corpus_size": len(uids), "windows_unit": unit, "libraries": library_versions(), "scores": scores,
    })
    save_embedder_state(config, ctx.lake, model_dir)
    seal = integrity.seal(model_dir)  # checked before the model or its embedding state is used again
    write_json_atomic({"run_id": run_id, "path": str(model_dir), "seal": seal},
                      ctx.lake.root / "models" / "topics" / "latest.json")
    commit_update(ctx.lake, model)  # the update is recorded only now that its model is durable
    timings["write"] = time.perf_counter() - started

    ctx.scores["topics"] = scores
    log.info("topics: %d docs, %d topics, NPMI %.4f, diversity %.3f, outliers %.1f%%", len(uids),
             scores["n_topics"], scores["npmi"], scores["diversity"], 100 * scores["outlier_share"])
    return {"docs": len(uids), "embedding": embedding_info, "model_dir": str(model_dir), "scores": scores,
            "windows": sorted({w for w in doc_topics["window_label"].to_pylist()}),
            "seconds": {k: round(v, 2) for k, v in timings.items()}}


SECTION = registry.config_sections.register("topics")(TopicsConfig)
STAGE = registry.stages.register("topics")(
    Stage("topics", run=run_topics, inputs=("docs",),
          outputs=("topics", "doc_topics", "topic_prevalence", "topic_ids", "topic_id_history",
                   "topic_updates", "topic_outlier_pool", "models/topics"), caches=("cache/embeddings",),
          section="topics",
          description="embeddings (cached), one BERTopic model, topics and prevalence per window"))
