"""Stable topic ids across runs, the nightly topic update, and the choice between update and refit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edumine.lake import Lake
from edumine.models.topics.ids import (
    StableTopicIds,
    TopicSignatures,
    assign_stable_ids,
    registry_frame,
    remap,
)
from edumine.models.topics.update import IncrementalTopicUpdate, plan_update, updates_table

# -- matching signatures ---------------------------------------------------------------------------------


def _signatures(ids: list[int], directions: np.ndarray, key: str = "emb-a") -> TopicSignatures:
    terms = [[(f"word{int(np.argmax(d))}", 1.0), (f"extra{i}", 0.5)] for i, d in zip(ids, directions)]
    return TopicSignatures(model_ids=ids, terms=terms, centroids=directions, embedding_key=key,
                           labels=[f"topic {i}" for i in ids], sizes=[10] * len(ids))


def _round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as the runner writes it and the next run reads it back."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False).to_pandas()


def test_same_topics_keep_their_ids_whatever_the_fit_calls_them() -> None:
    eye = np.eye(6)
    first, registry, history = assign_stable_ids(None, None, "run-1", _signatures([0, 1, 2, 3], eye[:4]))
    assert first == {-1: -1, 0: 0, 1: 1, 2: 2, 3: 3}
    # Run 2: the fit numbers the same topics in another order, drops topic 3 and finds a new one.
    rng = np.random.default_rng(0)
    moved = np.vstack([eye[2], eye[0], eye[1], eye[5]]) + rng.normal(0, 0.02, (4, 6))
    second, registry, history = assign_stable_ids(_round_trip(registry), _round_trip(history), "run-2",
                                                  _signatures([0, 1, 2, 3], moved))
    assert second == {-1: -1, 0: 2, 1: 0, 2: 1, 3: 4}  # the new topic gets a new id, never 3 again
    stored = registry_frame(_round_trip(registry)).set_index("stable_id")
    assert stored.loc[3, "active"] == False and stored.loc[4, "first_run"] == "run-2"  # noqa: E712
    statuses = history[history["run_id"] == "run-2"].set_index("stable_id")["status"].to_dict()
    assert statuses == {2: "kept", 0: "kept", 1: "kept", 4: "new", 3: "retired"}
    # Run 3: topic 3 is back: it regains its id.
    third, _, _ = assign_stable_ids(_round_trip(registry), _round_trip(history), "run-3",
                                    _signatures([0, 1], np.vstack([eye[3], eye[0]])))
    assert third == {-1: -1, 0: 3, 1: 0}
    assert remap(np.array([1, -1, 0]), third).tolist() == [0, -1, 3]
    with pytest.raises(KeyError, match="no stable id"):
        remap(np.array([7]), third)


def test_another_embedding_backend_is_matched_by_terms() -> None:
    eye = np.eye(4)
    previous = StableTopicIds().fit(_signatures([0, 1], eye[:2]), None, "run-1").registry_
    other = _signatures([0, 1], np.random.default_rng(1).normal(size=(2, 8)), key="emb-b")
    other.terms = [[("word1", 0.9), ("extra1", 0.5)], [("word0", 1.0), ("extra0", 0.4), ("new", 0.1)]]
    matcher = StableTopicIds().fit(other, previous, "run-2")
    assert matcher.mapping_ == {0: 1, 1: 0}


# -- the choice between a refit and an update -------------------------------------------------------------

def test_plan_update_refits_when_it_should() -> None:
    history = None

    def plan(**kw: object):  # noqa: ANN202
        return plan_update(history, **{"config_hash": "h1", "model_exists": True, "n_docs": 1000, **kw})

    assert plan(model_exists=False).mode == "refit"
    assert plan().reason == "no refit recorded in topic_updates"
    now = datetime(2026, 1, 31, tzinfo=timezone.utc)
    history = updates_table(None, {"run_id": "r1", "mode": "refit", "reason": "first", "config_hash": "h1",
                                   "docs_total": 1000, "at": now - timedelta(days=10)}).to_pandas()
    assert plan(now=now).mode == "incremental"
    assert plan(now=now, n_docs=1100).mode == "incremental"
    assert "refit_new_share" in plan(now=now, n_docs=1300).reason
    assert plan(now=now, config_hash="h2").reason == "topic settings changed since the last refit"
    assert "days ago" in plan(now=now + timedelta(days=100)).reason
    assert plan(now=now, mode="refit").mode == "refit"
    assert plan(now=now + timedelta(days=100), mode="incremental").mode == "incremental"
    with pytest.raises(ValueError, match="unknown topic update mode"):
        plan(mode="sometimes")


# -- the nightly update on real posts ---------------------------------------------------------------------

def test_update_adds_a_new_topic_for_a_new_community(default_lake: Path, tmp_path: Path) -> None:
    """A model of r/teaching 2017-18 meets r/TEFL posts: they pool up and become new topics; the updated
    model saves, loads and assigns TEFL posts to them."""
    import pyarrow.compute as pc

    from edumine.models.embeddings.backends import make_embedder
    from edumine.models.text.preprocess import Preprocessor
    from edumine.models.topics.model import TopicModel

    wanted = pc.field("community").isin(["teaching", "tefl"]) & (pc.field("kind") == "post")
    table = Lake(default_lake).read_posts(columns=["uid", "community", "title", "body", "link_url", "is_deleted"],
                                          filter=wanted)
    results = list(Preprocessor().process(table.to_pylist()))
    frame = table.select(["uid", "community"]).to_pandas().assign(lemmas=[r.lemmas for r in results],
                                                                  usable=[r.usable for r in results])
    frame = frame[frame["usable"]].sort_values("uid").reset_index(drop=True)
    embedder = make_embedder("embeddings.tfidf_svd.v1", dims=128).fit(frame["lemmas"].tolist())
    vectors = embedder.encode(frame["lemmas"].tolist())
    old = (frame["community"] == "teaching").to_numpy()
    # The estimator's defaults before they became the config's (issue 13): PCA, plain trimmed k-means, no outliers
    model = TopicModel(reduction="pca", clustering="topics.kmeans.v1", n_clusters=30, kmeans_trim=0.0, min_df=5,
                       outliers="none").fit(frame["lemmas"][old].tolist(), vectors[old])
    model.save(tmp_path / "model", {})
    loaded = TopicModel.load(tmp_path / "model")
    before = len(loaded.topic_ids())

    new = ~old
    update = IncrementalTopicUpdate().fit(loaded, frame["uid"][new].tolist(), frame["lemmas"][new].tolist(),
                                          vectors[new])
    assert update.new_topics_, "TEFL posts should form at least one new topic"
    added = [t["topic_id"] for t in update.new_topics_]
    assert added == list(range(before, before + len(added)))
    # Docs in new topics came from the pool; the rest stay pooled or were assigned on arrival.
    resolved = pd.Series(update.resolved_)
    assert resolved.isin(added).sum() >= 15
    assert len(update.pool_) + len(resolved) == int((update.topics_ == -1).sum())
    assert (update.scores_[update.topics_ >= 0] >= 0.3).all()
    # TEFL words label the new topics.
    words = {w for t in update.new_topics_ for w in t["terms"]}
    assert words & {"esl", "english", "korea", "tefl", "china", "japan", "visa", "celta", "tesol", "efl"}, words

    loaded.save(tmp_path / "updated", {})
    again = TopicModel.load(tmp_path / "updated")
    assert len(again.topic_ids()) == before + len(added)
    topics, _ = again.transform(frame["lemmas"][new].tolist(), vectors[new])
    assert np.isin(topics, added).sum() >= resolved.isin(added).sum() * 0.8


# -- through the pipeline: same data twice, then one more month ------------------------------------------

def _config(lake: Path, until: str, **sections: object):  # noqa: ANN202
    from conftest import default_sources, make_config

    sources = [s for s in default_sources() if s["name"] == "top-posts-2009-13"]
    for source in sources:
        source["until"] = until
    return make_config(lake, sources=sources, windows={"unit": "year"}, topics={"n_clusters": 30}, **sections)


def _read(lake: Path, name: str) -> pd.DataFrame:
    import pyarrow.dataset as ds

    frame = ds.dataset(lake / name, format="parquet").to_table().to_pandas()
    return frame.drop(columns=[c for c in ("run_id",) if c in frame]).sort_values(list(frame.columns[:2]))\
        .reset_index(drop=True)


def test_pipeline_ids_are_stable_and_nightly_updates_add_only_new_docs(tmp_path: Path) -> None:
    from edumine.pipelines.runner import run_pipeline

    lake = tmp_path / "lake"
    stages = ["preprocess", "topics", "lineage"]
    refit = {"lineage": {"update": {"mode": "refit"}}}
    first = run_pipeline(_config(lake, "2013-06-01", **refit), only=stages)
    assert first.outputs["topic_update"]["mode"] == "refit"
    # Lineage reads the topic stage's own embedding cache (regression: it built the backend without the
    # stage's parameters, missed the cache on every fresh lake and fell back to c-TF-IDF).
    assert first.outputs["lineage"]["compared_by"] == "embeddings"
    tables = {name: _read(lake, name) for name in ("doc_topics", "topic_events", "topic_lineage")}
    second = run_pipeline(_config(lake, "2013-06-01", **refit), only=stages)
    assert second.outputs["topic_update"]["stable_ids_kept"] == second.outputs["topic_update"]["topics"] - 1
    for name, table in tables.items():  # same data, refitted: identical ids, events and edges
        pd.testing.assert_frame_equal(_read(lake, name), table, obj=name)

    third = run_pipeline(_config(lake, "2013-09-01"), only=stages)
    update = third.outputs["topic_update"]
    assert update["mode"] == "incremental"
    now = _read(lake, "doc_topics")
    assert update["docs_new"] == len(now) - len(tables["doc_topics"]) > 0
    merged = tables["doc_topics"].merge(now, on="uid", suffixes=("_before", "_after"))
    assert len(merged) == len(tables["doc_topics"])
    assert (merged["topic_id_before"] == merged["topic_id_after"]).all()
    assert (merged["core_before"] == merged["core_after"]).all() and merged["core_after"].any()
    # New docs join an existing topic by the fit's own rule (topics.outlier_threshold), never as core docs.
    new = now[~now["uid"].isin(tables["doc_topics"]["uid"])]
    joined = new[new["topic_id"].isin(set(tables["doc_topics"]["topic_id"]) - {-1})]
    from edumine.pipelines.stages.topics import TopicsConfig

    threshold = TopicsConfig().resolved().outlier_threshold
    assert not new["core"].any() and len(joined) > 0 and (joined["probability"] >= threshold - 1e-6).all()
    history = pd.read_parquet(lake / "topic_updates" / "part-0.parquet")
    assert history["mode"].tolist() == ["refit", "refit", "incremental"]
    assert set(now["window_label"]) >= {"2013"}
