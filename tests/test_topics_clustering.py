"""Topic clustering options (issue 17): versioned clustering names, GMM soft assignments, k chosen by a
criterion, dropped catch-alls in nightly updates, and the estimator's defaults coming from its params model.
On real r/teaching posts (the shared corpora), preprocessed and embedded as the topic stage does."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from edumine.lake import Lake


@pytest.fixture(scope="module")
def teaching(default_lake: Path) -> tuple[list[str], list[str], np.ndarray]:
    """uids, lemma strings and TF-IDF+SVD vectors (the stage's default backend) of r/teaching's usable posts."""
    import pyarrow.compute as pc

    from edumine.models.embeddings.backends import make_embedder
    from edumine.models.text.preprocess import Preprocessor
    from edumine.pipelines.stages.topics import EmbeddingsConfig

    wanted = (pc.field("community") == "teaching") & (pc.field("kind") == "post")
    rows = sorted(Lake(default_lake).read_posts(columns=["uid", "title", "body", "link_url", "is_deleted"],
                                                filter=wanted).to_pylist(), key=lambda r: r["uid"])
    docs = list(Preprocessor().process(rows))
    keep = [i for i, d in enumerate(docs) if d.usable]
    uids, lemmas = [rows[i]["uid"] for i in keep], [docs[i].lemmas for i in keep]
    settings = EmbeddingsConfig()
    vectors = make_embedder(settings.backend, **settings.params).fit(lemmas).encode(lemmas)
    return uids, lemmas, vectors


# -- one source of defaults, versioned names ---------------------------------------------------------------

def test_estimator_defaults_are_the_params_models() -> None:
    from edumine.models.topics.model import TopicModel
    from edumine.models.topics.params import TopicModelParams
    from edumine.pipelines.stages.topics import TopicsConfig

    signature = {name: p.default for name, p in inspect.signature(TopicModel.__init__).parameters.items()
                 if name != "self"}
    assert signature == TopicModelParams().model_dump()
    assert TopicModel().get_params() == TopicsConfig().model_params() == TopicModelParams().model_dump()
    # The stage's config adds only its own settings to the model's parameters.
    assert set(TopicsConfig.model_fields) - set(TopicModelParams.model_fields) == {
        "enabled", "kinds", "embeddings", "npmi_window", "bootstrap_resamples"}


def test_clustering_names_are_versioned_and_old_names_keep_their_defaults(tmp_path: Path) -> None:
    from conftest import make_config

    from edumine.errors import ConfigError
    from edumine.models.topics.params import resolve_params
    from edumine.registry import topic_clusterings

    assert {"topics.kmeans.v1", "topics.kmeans.v2", "topics.kmeans.v3", "topics.kmeans.v4", "topics.gmm.v1",
            "topics.hdbscan.v1"} <= set(topic_clusterings.names())
    assert topic_clusterings.get("kmeans") is topic_clusterings.get("topics.kmeans.v1")
    assert topic_clusterings.get("hdbscan") is topic_clusterings.get("topics.hdbscan.v1")
    def versioned(name: str, **given: object) -> dict:
        return {k: v for k, v in resolve_params({"clustering": name, **given}).items() if k != "clustering"}

    before_17 = {"n_clusters": "auto", "catchall_coverage": 0.0, "assigned_coverage": 0.0, "link_dump_share": 0.0,
                 "link_series_min_posts": 0, "outlier_threshold": 0.35}
    assert versioned("kmeans") == versioned("topics.kmeans.v1") == before_17
    v2 = {"n_clusters": "auto", "catchall_coverage": 0.3, "assigned_coverage": 0.0, "link_dump_share": 0.0,
          "link_series_min_posts": 0, "outlier_threshold": 0.25}
    assert versioned("topics.kmeans.v2") == versioned("topics.gmm.v1") == v2
    assert versioned("topics.kmeans.v3") == {**v2, "assigned_coverage": 0.2}
    assert versioned("topics.kmeans.v4") == {**v2, "assigned_coverage": 0.2, "link_dump_share": 0.5,
                                              "link_series_min_posts": 5}
    assert versioned("topics.hdbscan.v1")["assigned_coverage"] == 0.0
    assert versioned("topics.kmeans.v2", catchall_coverage=0.0)["catchall_coverage"] == 0.0  # config wins
    with pytest.raises(ConfigError, match="topics.kmeans.v2"):
        make_config(tmp_path / "lake", topics={"clustering": "topics.kmeans.v9"})
    assert make_config(tmp_path / "lake", topics={"clustering": "kmeans"}).topics.resolved().outlier_threshold == 0.35


def test_an_old_config_name_reproduces_its_topics_and_v2_drops_the_catchalls(teaching) -> None:  # noqa: ANN001
    from edumine.models.topics.model import TopicModel

    _, lemmas, vectors = teaching
    old = TopicModel(clustering="kmeans", n_clusters=30).fit(lemmas, vectors)
    v1 = TopicModel(clustering="topics.kmeans.v1", n_clusters=30).fit(lemmas, vectors)
    v2 = TopicModel(clustering="topics.kmeans.v2", n_clusters=30).fit(lemmas, vectors)
    assert np.array_equal(old.topics_, v1.topics_) and not v1.catchall_.any()
    assert (v1.catchall_coverage_, v1.outlier_threshold_) == (0.0, 0.35)
    assert (v2.catchall_coverage_, v2.outlier_threshold_) == (0.3, 0.25)
    assert v2.catchall_.any() and len(v2.topic_ids()) < len(v1.topic_ids())
    # Same k-means clusters: v2's topics are v1's cores minus the catch-alls.
    def cores(m: TopicModel) -> set[frozenset[int]]:
        return {frozenset(np.flatnonzero(m.core_ & (m.topics_ == t)).tolist()) for t in m.topic_ids()}

    assert cores(v2) < cores(v1)


# -- GMM soft assignments and k by a criterion --------------------------------------------------------------

def test_gmm_gives_each_core_doc_its_posterior(teaching) -> None:  # noqa: ANN001
    from edumine.models.topics.clustering import TrimmedGMM
    from edumine.models.topics.model import TopicModel, normalise

    _, lemmas, vectors = teaching
    model = TopicModel(clustering="topics.gmm.v1", n_clusters=20, random_state=1).fit(lemmas, vectors)
    mixture = TrimmedGMM(n_clusters=20, trim=model.kmeans_trim, random_state=1).fit(normalise(vectors, model.center_))
    core = model.core_
    # A component's core is its denser half; the catch-all clusters' cores became outliers.
    assert np.array_equal(core, (mixture.labels_ != -1) & ~model.catchall_) and 0.1 < core.mean() < 0.5
    assert np.allclose(model.probabilities_[core], mixture.probabilities_[core])
    assert (mixture.probabilities_ > 0).all() and (mixture.probabilities_ <= 1).all()
    # Each topic's core is one mixture component's core (the catch-all clusters' cores are outliers).
    components = mixture.gmm_.predict_proba(normalise(vectors, model.center_)).argmax(axis=1)
    for topic in set(model.topic_ids()) - {-1}:
        assert len(set(components[core & (model.topics_ == topic)].tolist())) == 1
    assert (model.catchall_ & (mixture.labels_ != -1)).any()


def test_k_by_criterion_is_the_best_candidate_around_the_square_root(teaching) -> None:  # noqa: ANN001
    from edumine.models.topics.clustering import MAX_OUTLIERS, MIN_DIVERSITY, candidate_ks, scale_k
    from edumine.models.topics.model import TopicModel

    _, lemmas, vectors = teaching
    n = len(lemmas)
    by_silhouette = TopicModel(n_clusters="silhouette").fit(lemmas, vectors)
    assert sorted(by_silhouette.k_scores_) == candidate_ks(n) and len(candidate_ks(n)) >= 4
    assert by_silhouette.n_clusters_ == max(by_silhouette.k_scores_, key=by_silhouette.k_scores_.get)
    by_npmi = TopicModel(n_clusters="npmi").fit(lemmas, vectors)
    scores, train = by_npmi.k_scores_, int(n * 0.8)
    assert sorted(scores) == candidate_ks(train)
    allowed = [k for k, s in scores.items() if s["diversity"] >= MIN_DIVERSITY and s["outliers"] <= MAX_OUTLIERS]
    allowed = allowed or list(scores)
    assert by_npmi.n_clusters_ == scale_k(max(allowed, key=lambda k: scores[k]["npmi"]), train, n)
    with pytest.raises(ValueError, match="bic"):
        TopicModel(n_clusters="bic").fit(lemmas, vectors)  # BIC is a mixture's criterion, not k-means'


# -- nightly updates and the dropped catch-alls ------------------------------------------------------------

def test_nightly_update_sends_docs_near_a_dropped_catchall_to_the_outliers(teaching, tmp_path: Path) -> None:
    from edumine.models.topics.ids import add_stable_ids, assign_stable_ids, signatures_of
    from edumine.models.topics.model import TopicModel, normalise, topic_matrix
    from edumine.models.topics.update import IncrementalTopicUpdate

    uids, lemmas, vectors = teaching
    cut = int(len(uids) * 0.8)
    fitted = TopicModel(n_clusters=40).fit(lemmas[:cut], vectors[:cut])
    assert fitted.catchall_.any() and len(fitted.catchall_centroids_) > 0
    fitted.save(tmp_path / "model", {})
    model = TopicModel.load(tmp_path / "model")
    assert np.allclose(model.catchall_centroids_, fitted.catchall_centroids_)

    # The night's docs: the held-out posts, and the catch-all docs of the fit posted again under new uids.
    again = np.flatnonzero(fitted.catchall_)
    night_uids = uids[cut:] + [f"again-{i}" for i in again]
    night_lemmas = lemmas[cut:] + [lemmas[i] for i in again]
    night_vectors = np.vstack([vectors[cut:], vectors[again]])
    threshold = fitted.outlier_threshold_
    matrix, _ = topic_matrix(model.model_)  # the refit's topics (the update may add some)
    update = IncrementalTopicUpdate(assign_min_similarity=threshold, pool_min_docs=10, new_topic_min_docs=5)\
        .fit(model, night_uids, night_lemmas, night_vectors)

    # Expected by the fit's rule: nearest among the topics and the dropped catch-alls is a catch-all, at the
    # threshold or more.
    unit = normalise(night_vectors, model.center_)
    to_topics, to_catchalls = (unit @ matrix.T).max(axis=1), (unit @ model.catchall_centroids_.T).max(axis=1)
    expected = (to_catchalls > to_topics) & (to_catchalls >= threshold)
    clear = (np.abs(to_catchalls - to_topics) > 1e-5) & (np.abs(to_catchalls - threshold) > 1e-5)  # float32 ties
    assert np.array_equal(update.catchall_[clear], expected[clear]) and clear.mean() > 0.99
    assert expected[len(uids) - cut:].mean() > 0.5
    assert (update.topics_[expected] == -1).all()
    flagged = set(np.asarray(night_uids)[expected].tolist())
    assert not flagged & set(update.pool_["uid"]) and not flagged & set(update.resolved_)

    # Stable ids: the refit's topics get ids, the dropped catch-alls none, and a topic added at night gets
    # an id never given before, so no id can come to stand for a dropped catch-all.
    unit_fit = normalise(vectors[:cut], fitted.center_)
    mapping, registry, history = assign_stable_ids(None, None, "run-1",
                                                   signatures_of(fitted, unit_fit, fitted.topics_, "k"))
    topics = set(fitted.topic_ids()) - {-1}
    assert set(mapping) - {-1} == topics and sorted(v for v in mapping.values() if v >= 0) == list(range(len(topics)))
    if update.new_topics_:
        added = [t["topic_id"] for t in update.new_topics_]
        assert min(added) == max(fitted.topic_ids()) + 1
        night = np.array([update.resolved_.get(uid, -1) for uid in night_uids])
        signatures = signatures_of(model, unit, night, "k")
        new_ids, _, _ = add_stable_ids(registry, history, "run-2", signatures)
        assert min(new_ids.values()) > max(mapping.values())


def test_hdbscan_fits_a_tiny_corpus(teaching: tuple[list[str], list[str], np.ndarray]) -> None:
    """Regression: topics.hdbscan.v1 failed on small corpora. (1) With fewer docs than min_cluster_size, HDBSCAN's
    prediction data asked for more neighbours than there are docs. (2) With two or three clusters, the topic
    vocabulary's min_df=2 topics contradicted max_df=0.5 of them, and scikit-learn refused to fit."""
    from edumine.models.topics.model import TopicModel

    _, lemmas, vectors = teaching
    rng = np.random.default_rng(0)

    def separated(n_docs: int, n_groups: int) -> tuple[list[str], np.ndarray]:
        picked = rng.choice(len(lemmas), n_docs, replace=False)
        groups = np.arange(n_docs) % n_groups
        directions = np.eye(vectors.shape[1], dtype=np.float32)[:n_groups] * 5.0
        noise = rng.normal(scale=0.05, size=(n_docs, vectors.shape[1]))
        return [lemmas[i] for i in picked], (directions[groups] + noise).astype(np.float32)

    tiny = TopicModel(clustering="topics.hdbscan.v1", reduction="none", random_state=0).fit(*separated(12, 2))
    assert len(tiny.topics_) == 12  # min_cluster_size 15 > 12 docs: fitted, not failed
    three = TopicModel(clustering="topics.hdbscan.v1", reduction="none", random_state=0).fit(*separated(90, 3))
    found = [t for t in three.topic_ids() if t != -1]
    assert len(found) == 3, f"{len(found)} topics in 3 separated groups of 30"
    assert all(three.top_terms(t, 3) for t in found)
