"""Lineage stage: how topics emerge, persist, grow, decline, fade, split and merge across windows.

Reads the lake's ``docs`` (usable docs, lemmas, created_at, community), ``doc_topics`` (the topic stage's
assignments, stable ids) and, where present, ``topic_prevalence`` (its intervals) and the topic stage's
cached embeddings (read only: a doc missing from the cache makes the stage compare topics by c-TF-IDF
alone rather than embed anything). Writes, rewritten whole on every run (deterministic for the same input):

- ``topic_lineage/part-0.parquet``: community, from_window, from_window_start, from_topic, to_window,
  to_window_start, to_topic, similarity;
- ``topic_events/part-0.parquet``: window_label, window_start, community, scope (``all`` for the whole
  corpus, whose community is ``all``; ``community`` for a community's own rows), topic_id, event,
  related_topics, from_window, docs and prevalence (share and 95 % interval) before and after, similarity,
  score.

The ``lineage`` section also holds the settings of stable topic ids (``stable_ids``) and of the nightly
update (``update``) that the topic stage applies through ``edumine.models.topics.ids`` and
``edumine.models.topics.update``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from edumine import registry
from edumine.config import StrictModel
from edumine.progress import phase
from edumine.stages import Output, RunInfo, Stage, StageResult

log = logging.getLogger(__name__)


class StableIdsConfig(StrictModel):
    """Stable topic ids across runs (applied by the topic stage)."""

    enabled: bool = True
    min_similarity: float = Field(0.7, ge=0, le=1, description="cosine a refitted topic needs to keep an old "
                                                                "id (Hungarian matching on topic centroids)")


class UpdateConfig(StrictModel):
    """Nightly update of the topic model (applied by the topic stage)."""

    mode: Literal["auto", "incremental", "refit"] = Field(
        "auto", description="auto: refit when there is no model, settings changed, the last refit is older "
                            "than refit_every_days or too many docs were added; else update incrementally")
    refit_every_days: float = Field(90.0, gt=0)
    refit_new_share: float = Field(0.25, gt=0, description="docs added since the last refit, as a share of "
                                                           "the docs it saw, that force a refit")
    assign_min_similarity: Optional[float] = Field(None, ge=-1, le=1, description="a new doc less similar "
                                                   "than this to every topic joins the outlier pool; null: "
                                                   "topics.outlier_threshold, the rule the fit assigned docs by")
    pool_min_docs: int = Field(100, ge=2, description="pooled outliers needed before new topics are sought")
    new_topic_min_docs: int = Field(15, ge=2, description="docs a new topic needs (HDBSCAN min_cluster_size)")
    merge_min_similarity: float = Field(0.7, ge=0, le=1, description="a pooled group this similar to an "
                                        "existing topic joins it instead of becoming a new topic")


class LineageConfig(StrictModel):
    """Topic lineage across windows (topic_lineage, topic_events)."""

    components = {"method": ("lineage_methods", None)}

    enabled: bool = True
    method: str = Field("lineage.window_match.v1", description="registered lineage method")
    match_threshold: float = Field(0.75, ge=0, le=1, description="similarity for an edge between different "
                                   "topic ids (split / merge); same ids always link")
    embedding_weight: float = Field(1.0, ge=0, le=1, description="weight of embedding centroids against "
                                    "c-TF-IDF in the similarity (centroids separate same from other topics "
                                    "far better: AUC 0.985 against 0.78, measured)")
    min_topic_docs: int = Field(5, ge=1, description="docs a topic needs in a window to have events reported")
    min_topic_share: float = Field(0.005, ge=0, le=1, description="share a topic needs in a window, likewise")
    min_track_docs: int = Field(2, ge=1, description="docs that still count as the topic being there (below "
                                                     "the reporting size) when matching")
    min_window_docs: int = Field(200, ge=1, description="docs a window needs in a scope to be compared at all: "
                                 "with ~50 topics a smaller window leaves most topics under min_topic_docs, so "
                                 "they would all seem to emerge after it (measured on the 2010 top posts)")
    change_ratio: float = Field(1.5, ge=1, description="grew / declined need non-overlapping 95 % intervals "
                                                       "and a share ratio of at least this")
    per_community: bool = Field(True, description="events per community as well as for the whole corpus (all)")
    use_embeddings: bool = True
    stable_ids: StableIdsConfig = StableIdsConfig()
    update: UpdateConfig = UpdateConfig()


def make_lineage(config: LineageConfig, unit: str) -> Any:
    import edumine.models.lineage.tracking  # noqa: F401  (registers the built-in methods)
    from edumine.models.lineage.tracking import lineage_methods

    return lineage_methods.get(config.method)(
        unit=unit, match_threshold=config.match_threshold, embedding_weight=config.embedding_weight,
        min_topic_docs=config.min_topic_docs, min_topic_share=config.min_topic_share,
        min_track_docs=config.min_track_docs, min_window_docs=config.min_window_docs,
        change_ratio=config.change_ratio, per_community=config.per_community)


def lineage_inputs(docs: Any, doc_topics: Any, lemmas: bool = True) -> Any:
    """Usable docs joined with their topics: uid, community, created_at, lemmas, text_hash, topic_id (None when
    either table is missing). ``docs`` and ``doc_topics`` are the runner's table handles. ``lemmas=False``
    leaves the lemmas out (empty strings): they are only read for the docs whose windows are recomputed."""
    columns = ["uid", "community", "created_at", "usable", "text_hash"] + (["lemmas"] if lemmas else [])
    docs = docs.read(columns=columns)
    topics = doc_topics.read(columns=["uid", "topic_id"])
    if docs is None or topics is None:
        return None
    docs, topics = docs.to_pandas(), topics.to_pandas()
    docs = docs[docs["usable"].fillna(False).astype(bool)].drop(columns=["usable"])
    if not lemmas:
        docs["lemmas"] = ""
    frame = docs.merge(topics.drop_duplicates("uid"), on="uid", how="inner")
    frame["community"] = frame["community"].astype(str)
    return frame.sort_values("uid", kind="stable").reset_index(drop=True)


def read_lemmas(docs: Any, uids: list[str]) -> dict[str, str]:
    """Lemmas of the given docs, by uid (for the windows a nightly run recomputes)."""
    import pyarrow.compute as pc

    table = docs.read(columns=["uid", "lemmas"], filter=pc.field("uid").isin(sorted(set(uids))))
    return {} if table is None else dict(zip(table["uid"].to_pylist(), table["lemmas"].to_pylist()))


def model_center(models: Any) -> Any:
    """The saved topic model's corpus mean vector (what its vectors are centred on), or None."""
    pointer = models.read_json("latest.json")
    if not pointer:
        return None
    path = models.path / Path(pointer["path"]).name / "edumine.safetensors"
    if not path.is_file():
        return None
    from safetensors.numpy import load_file

    return load_file(str(path)).get("center")


def lineage_basis(config: LineageConfig, center: Any, cache: Any) -> str:
    """What a lineage unit's rows depend on besides its docs: the settings, the centre and the embeddings."""
    import hashlib

    digest = hashlib.sha256(config.model_dump_json().encode())
    digest.update(b"none" if center is None else center.astype("<f4").tobytes())
    digest.update(repr(cache[1:] if cache else None).encode())
    return digest.hexdigest()[:16]


def topic_embedding_cache(models: Any, cache: Any) -> tuple[Path, str, list[str]] | None:
    """Where the topic stage cached the vectors its model was fitted on, and under which key: read from that
    model's manifest (the topic stage's output), never rebuilt from the topic stage's config. The cache is
    the lake's ``cache/embeddings`` artefact unless the model was fitted with ``topics.embeddings.cache_dir``
    pointing elsewhere."""
    pointer = models.read_json("latest.json")
    if not pointer:
        return None
    meta = models.read_json(f"{Path(pointer['path']).name}/manifest.json")
    if not meta:
        return None
    chosen = (meta.get("stage_config", {}).get("embeddings", {}) or {}).get("cache_dir")
    root = Path(chosen) if chosen else cache.path
    return root, meta["embedding_key"], meta.get("embedding_parts") or [meta["embedding_key"]]


def cached_embeddings(models: Any, cache: Any, frame: Any) -> Any:
    """The topic stage's cached vectors for ``frame``'s docs, or None when any is missing (nothing is embedded
    here)."""
    from edumine.models.embeddings.concat import cached_by_keys

    found = topic_embedding_cache(models, cache)
    if "text_hash" not in frame or found is None:
        return None
    cache_root, key, parts = found
    vectors, missing = cached_by_keys(cache_root, parts, frame["uid"].tolist(), frame["text_hash"].tolist())
    if vectors is None or missing.any():
        log.warning("lineage: %d of %d docs have no cached %s embedding; comparing topics by c-TF-IDF only",
                    int(missing.sum()) if missing is not None else len(frame), len(frame), key)
        return None
    return vectors


def event_scope(communities: Any) -> list[str]:
    """``all`` for the whole corpus's rows, ``community`` for a community's own: a plain filter on scope
    counts every event once."""
    from edumine.models.lineage.tracking import ALL_SCOPE

    return ["all" if c == ALL_SCOPE else "community" for c in communities]


def lineage_tables(model: Any) -> tuple[Any, Any]:
    """The fitted lineage's ``topic_lineage`` and ``topic_events`` as Arrow tables."""
    import pyarrow as pa

    lineage = model.lineage_.copy()
    for column in ("from_window_start", "to_window_start"):
        lineage[column] = lineage[column].astype("datetime64[s]").dt.date
    events = model.events_.copy()
    events["window_start"] = events["window_start"].astype("datetime64[s]").dt.date
    events.insert(events.columns.get_loc("community") + 1, "scope", event_scope(events["community"]))
    lineage_schema = pa.schema([("community", pa.string()), ("from_window", pa.string()),
                                ("from_window_start", pa.date32()), ("from_topic", pa.int64()),
                                ("to_window", pa.string()), ("to_window_start", pa.date32()),
                                ("to_topic", pa.int64()), ("similarity", pa.float64())])
    event_fields = [("window_label", pa.string()), ("window_start", pa.date32()), ("community", pa.string()),
                    ("scope", pa.string()), ("topic_id", pa.int64()), ("event", pa.string()), ("related_topics", pa.list_(pa.int64())),
                    ("from_window", pa.string()), ("docs_before", pa.int64()), ("docs_after", pa.int64())]
    event_fields += [(name, pa.float64()) for name in events.columns if name.startswith("prevalence_")]
    event_fields += [("similarity", pa.float64()), ("score", pa.float64())]
    return (pa.Table.from_pandas(lineage, schema=lineage_schema, preserve_index=False),
            pa.Table.from_pandas(events, schema=pa.schema(event_fields), preserve_index=False))


def run_lineage(inputs: Any, config: LineageConfig, run: RunInfo) -> StageResult:
    """Recompute the window pairs whose docs changed since the last run and keep the others' rows
    (models/lineage/incremental.py); everything when there is no state, the basis changed, or topics are
    compared by c-TF-IDF (its idf spans all windows)."""
    import numpy as np
    import pyarrow as pa

    from edumine.models.lineage.incremental import merge_units, plan_units, window_fingerprints

    started = time.perf_counter()
    by_terms = not config.use_embeddings or config.embedding_weight < 1
    frame = lineage_inputs(inputs["docs"], inputs["doc_topics"], lemmas=by_terms)
    if frame is None:
        log.warning("lineage: the lake has no docs or doc_topics table yet; run the preprocess and topics "
                    "stages first (edumine run does)")
        return StageResult(summary={"skipped": "no docs or doc_topics table in the lake"})
    models = inputs["models/topics"]
    center = model_center(models) if config.use_embeddings else None
    basis = lineage_basis(config, center, topic_embedding_cache(models, inputs["cache/embeddings"])
                          if config.use_embeddings else None)
    fingerprints = window_fingerprints(frame, run.windows_unit, config.per_community, basis)
    stored = inputs["lineage_windows"].read()
    if not (inputs["topic_lineage"].exists() and inputs["topic_events"].exists()):
        stored = None  # the rows to keep are gone (a damaged file removed at the run's start): recompute all
    plan = plan_units(None if by_terms or stored is None else stored.to_pandas(), fingerprints,
                      config.min_window_docs)
    starts = np.asarray(window_starts_of(frame, run.windows_unit))
    # A full recomputation reads every doc, as lineage always did: with fewer than two windows of enough docs
    # there is no pair to plan, yet the fit still needs the corpus (regression: it was fitted on no docs).
    subset = frame if plan.full else \
        frame[np.isin(starts, np.array(sorted(plan.windows), dtype=np.int64))].reset_index(drop=True)
    vectors = None
    if config.use_embeddings:
        with phase("lineage: reading cached embeddings", len(subset), logger=log):
            vectors = cached_embeddings(models, inputs["cache/embeddings"], subset)
    if vectors is None and config.use_embeddings and not by_terms and len(subset):
        # Some vectors are missing: topics are compared by terms, whose idf spans all windows: all of them.
        plan, subset = plan_units(None, fingerprints, config.min_window_docs), frame
        lemmas = read_lemmas(inputs["docs"], subset["uid"].tolist())
        subset = subset.assign(lemmas=[lemmas.get(uid, "") for uid in subset["uid"]])
    old_lineage, old_events = inputs["topic_lineage"].read(), inputs["topic_events"].read()
    if plan.recompute or plan.full or old_lineage is None or old_events is None:
        prevalence = inputs["topic_prevalence"].read()
        prevalence = None if prevalence is None else prevalence.to_pandas()
        with phase(f"lineage: tracking topics across windows ({plan.reason})", len(subset), logger=log):
            model = make_lineage(config, run.windows_unit).fit(subset, vectors, prevalence, center=center)
        fresh_lineage, fresh_events = lineage_tables(model)
    else:  # no window changed: the stored rows are the result
        fresh_lineage, fresh_events = old_lineage.slice(0, 0), old_events.slice(0, 0)
    lineage = merge_units(old_lineage, fresh_lineage, "to_window_start", plan,
                          ["community", "to_window_start", "from_topic", "to_topic"])
    events_table = merge_units(old_events, fresh_events, "window_start", plan,
                               ["community", "window_start", "topic_id"])
    corpus = events_table.filter(pa.array(np.asarray(events_table["community"].to_pylist(), dtype=object) == "all"))
    counts = corpus.group_by("event").aggregate([("event", "count")]).to_pylist() if corpus.num_rows else []
    compared_by = "embeddings" if vectors is not None and config.embedding_weight > 0 else "c-tf-idf"
    summary = {"docs": len(frame), "docs_recomputed": len(subset),
               "windows": int(fingerprints["window_start"].nunique()),
               "pairs_recomputed": len(plan.recompute), "pairs_kept": len(plan.keep), "plan": plan.reason,
               "edges": lineage.num_rows, "events": events_table.num_rows,
               "events_all": {row["event"]: int(row["event_count"]) for row in sorted(counts, key=lambda r: r["event"])},
               "compared_by": compared_by, "seconds": round(time.perf_counter() - started, 2)}
    log.info("lineage: %d edges, %d events (%s; %s)", summary["edges"], summary["events"], compared_by, plan.reason)
    state = pa.Table.from_pandas(fingerprints.assign(window_start=fingerprints["window_start"].astype("datetime64[s]")
                                                     .dt.date), preserve_index=False)
    return StageResult(outputs={"topic_lineage": Output(lineage), "topic_events": Output(events_table),
                                "lineage_windows": Output(state)},
                       summary=summary, scores={"events_all": summary["events_all"], "edges": summary["edges"]})


def window_starts_of(frame: Any, unit: str) -> Any:
    """Each doc's window start as a day number (what ``plan_units`` keys windows by)."""
    from edumine.windows import window_starts

    return window_starts(frame["created_at"], unit).astype("datetime64[D]").astype("int64")


SECTION = registry.config_sections.register("lineage")(LineageConfig)
STAGE = registry.stages.register("lineage")(
    Stage("lineage", run=run_lineage, inputs=("docs", "doc_topics"), optional_inputs=("topic_prevalence", "models/topics"),
          caches=("cache/embeddings",),
          outputs=("topic_lineage", "topic_events", "lineage_windows"), section="lineage",
          description="topic lineage and events (emerged, persisted, grew, declined, faded, split, merged)"))
