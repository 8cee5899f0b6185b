"""``topics.kmeans.v4`` (issue 17): a cluster most of whose core docs are link posts the community ignored
(edumine.models.topics.link_dumps) goes to the outliers like a catch-all, however coherent its words, and so
does every post of a spam series, whatever cluster it is in.

The corpus is planted: six groups of posts, and one group of 40 ad posts whose words they share ("ad..."), in a
tight cluster, so its label coverage is high and the catch-all checks keep it; the posts table says which
posts nobody answered."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

DIM, GROUPS, GROUP_DOCS, AD_DOCS = 32, 6, 60, 40
AD_WORDS = [f"ad{j}" for j in range(5)]


@pytest.fixture(scope="module")
def planted() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Lemma strings, vectors, and the rows of the ad group."""
    rng = np.random.default_rng(11)
    lemmas, vectors = [], []
    for group in range(GROUPS + 1):
        words = AD_WORDS if group == GROUPS else [f"g{group}w{j}" for j in range(5)]
        for i in range(AD_DOCS if group == GROUPS else GROUP_DOCS):
            chosen = list(rng.choice(words, 3, replace=False))
            if group == 0 and i < 2 * len(AD_WORDS):  # the ad words occur in two topics (min_df)
                chosen.append(AD_WORDS[i // 2])
            lemmas.append(" ".join(chosen))
            vectors.append(3 * np.eye(DIM)[group] + rng.normal(0, 0.4, DIM))
    ads = np.arange(GROUPS * GROUP_DOCS, len(lemmas))
    return lemmas, np.array(vectors, dtype=np.float32), ads


def _fit(clustering: str, lemmas: list[str], vectors: np.ndarray, ignored: np.ndarray | None,  # noqa: ANN202
         series_size: np.ndarray | None = None, **params: object):
    from edumine.models.topics.model import TopicModel

    return TopicModel(clustering=clustering, n_clusters=GROUPS + 1, **params).fit(
        lemmas, vectors, ignored=ignored, series_size=series_size)


def _flags(n: int, rows: np.ndarray) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    flags[rows] = True
    return flags


def test_v4_drops_a_coherent_cluster_of_ignored_link_posts_that_v3_keeps(planted) -> None:  # noqa: ANN001
    lemmas, vectors, ads = planted
    ignored = _flags(len(lemmas), ads)
    v3 = _fit("topics.kmeans.v3", lemmas, vectors, ignored)
    v4 = _fit("topics.kmeans.v4", lemmas, vectors, ignored)
    assert (v3.link_dump_share_, v4.link_dump_share_) == (0.0, 0.5)
    # v3: the ad group is a topic of its own, with its own words, and passes both catch-all checks.
    topic = int(np.bincount(v3.topics_[ads][v3.topics_[ads] >= 0]).argmax())
    assert set(np.flatnonzero(v3.topics_ == topic)) == set(ads)
    assert {w for w, _ in v3.top_terms(topic, 4)} <= set(AD_WORDS) and not v3.catchall_.any()
    # v4: the same clusters; the ad group's docs, core and nearest-assigned, go to the outliers.
    assert np.array_equal(v4.link_dumps_, ignored) and np.array_equal(v4.catchall_, ignored)
    assert (v4.topics_[ads] == -1).all() and not v4.core_[ads].any()
    assert len(v4.topic_ids()) == len(v3.topic_ids()) - 1 and len(v4.catchall_centroids_) == 1
    assert int(np.argmax(v4.catchall_centroids_[0])) == GROUPS
    others = np.setdiff1d(np.arange(len(lemmas)), ads)
    same = {frozenset(np.flatnonzero(v3.topics_ == t)) for t in v3.topic_ids() if t not in (-1, topic)}
    assert same == {frozenset(np.flatnonzero(v4.topics_ == t)) for t in v4.topic_ids() if t != -1}
    assert (v4.topics_[others] != -1).mean() == (v3.topics_[others] != -1).mean()


def test_the_share_decides_and_unknown_engagement_drops_nothing(planted) -> None:  # noqa: ANN001
    lemmas, vectors, ads = planted
    v3 = _fit("topics.kmeans.v3", lemmas, vectors, None)
    core = ads[v3.core_[ads]]
    half = int(np.ceil(len(core) / 2))
    at_half = _fit("topics.kmeans.v4", lemmas, vectors, _flags(len(lemmas), core[:half]))
    assert at_half.link_dumps_[ads].all()  # at least half of the core: a link dump
    below = _fit("topics.kmeans.v4", lemmas, vectors, _flags(len(lemmas), np.concatenate([core[:half - 1], ads[
        ~v3.core_[ads]]])))  # every non-core ad post ignored too: only the core counts
    assert not below.link_dumps_.any() and np.array_equal(below.topics_, v3.topics_)
    for unknown in (_fit("topics.kmeans.v4", lemmas, vectors, None),
                    _fit("topics.kmeans.v4", lemmas, vectors, _flags(len(lemmas), ads), link_dump_share=0.0)):
        assert not unknown.link_dumps_.any() and np.array_equal(unknown.topics_, v3.topics_)


def test_v4_sends_every_post_of_a_spam_series_to_the_outliers(planted) -> None:  # noqa: ANN001
    lemmas, vectors, ads = planted
    v3 = _fit("topics.kmeans.v3", lemmas, vectors, None)
    # A series of six link posts in each of three groups (two core, one not, in each), none taken up.
    picked = np.concatenate([np.concatenate([np.flatnonzero(v3.core_[g * GROUP_DOCS:(g + 1) * GROUP_DOCS])[:2],
                                             np.flatnonzero(~v3.core_[g * GROUP_DOCS:(g + 1) * GROUP_DOCS])[:1]])
                             + g * GROUP_DOCS for g in range(3)])
    sizes = np.zeros(len(lemmas), dtype=np.int64)
    sizes[picked] = 9
    v4 = _fit("topics.kmeans.v4", lemmas, vectors, None, sizes)
    assert v4.link_series_min_posts_ == 5 and np.array_equal(v4.link_dumps_, sizes > 0)
    assert (v4.topics_[picked] == -1).all() and v4.catchall_[picked].all() and not v4.core_[picked].any()
    rest = sizes == 0
    assert np.array_equal(v4.topics_[rest] == -1, v3.topics_[rest] == -1)  # no other doc moved
    assert len(v4.topic_ids()) == len(v3.topic_ids()) and len(v4.catchall_centroids_) == 0
    sizes[picked] = 4  # a shorter series is not one
    assert np.array_equal(_fit("topics.kmeans.v4", lemmas, vectors, None, sizes).topics_, v3.topics_)
    assert np.array_equal(_fit("topics.kmeans.v3", lemmas, vectors, None, sizes * 3).topics_, v3.topics_)


def test_a_saved_v4_model_sends_new_ad_posts_to_the_outliers(planted, tmp_path: Path) -> None:  # noqa: ANN001
    from edumine.models.topics.model import TopicModel
    from edumine.models.topics.update import IncrementalTopicUpdate

    lemmas, vectors, ads = planted
    _fit("topics.kmeans.v4", lemmas, vectors, _flags(len(lemmas), ads)).save(tmp_path / "model", {})
    model = TopicModel.load(tmp_path / "model")
    assert model.clustering == "topics.kmeans.v4" and model.link_dump_share_ == 0.5
    rows = np.concatenate([ads[:10], np.arange(5)])
    update = IncrementalTopicUpdate(assign_min_similarity=model.outlier_threshold_, pool_min_docs=1000,
                                    new_topic_min_docs=1000).fit(model, [f"n{i}" for i in range(len(rows))],
                                                                 [lemmas[i] for i in rows], vectors[rows])
    assert update.catchall_[:10].all() and (update.topics_[:10] == -1).all() and (update.topics_[10:] != -1).all()
    # A model saved before the knob existed loads with the check off.
    manifest = tmp_path / "model" / "manifest.json"
    document = json.loads(manifest.read_text())
    for key in ("params", "applied_params"):
        del document[key]["link_dump_share"], document[key]["link_series_min_posts"]
    manifest.write_text(json.dumps(document))
    loaded = TopicModel.load(tmp_path / "model")
    assert (loaded.link_dump_share_, loaded.link_series_min_posts_) == (0.0, 0)


def _posts(rows: list[dict]) -> pa.Table:
    from edumine.models.topics.link_dumps import COLUMNS

    posted = datetime(2018, 1, 1, tzinfo=timezone.utc)
    base = {"author": "a", "kind": "post", "link_url": "https://example.com/x", "body": None, "num_comments": 0,
            "score": 1, "created_at": posted, "retrieved_at": posted + timedelta(days=30),
            "retrieval_estimated": False}
    records = [{"uid": f"u{i}", **base, **row} for i, row in enumerate(rows)]
    return pa.Table.from_pylist(records).select(list(COLUMNS))


def test_which_posts_count_as_ignored_link_posts() -> None:
    from edumine.models.topics.link_dumps import doc_signals, ignored_link_posts

    posted = datetime(2018, 1, 1, tzinfo=timezone.utc)
    cases = [({}, True), ({"score": 0, "body": "  "}, True), ({"num_comments": 1}, False), ({"score": 2}, False),
             ({"body": "my own words"}, False), ({"link_url": None}, False), ({"kind": "comment"}, False),
             ({"num_comments": None}, False), ({"score": None}, False), ({"retrieved_at": None}, False),
             ({"retrieved_at": posted + timedelta(hours=2)}, False),  # read before anyone could answer
             ({"retrieved_at": posted + timedelta(days=1)}, True), ({"retrieval_estimated": True}, False),
             ({"retrieval_estimated": None}, True)]
    table = _posts([row for row, _ in cases])
    assert ignored_link_posts(table).to_pylist() == [expected for _, expected in cases]
    assert doc_signals(table, ["u2", "u0", "unknown", "u1"])["ignored"].tolist() == [False, True, False, True]


def test_which_posts_make_a_spam_series() -> None:
    from edumine.models.topics.link_dumps import doc_signals, series_sizes

    posted = datetime(2018, 1, 1, tzinfo=timezone.utc)
    rows = ([{"author": "quiet", "num_comments": i % 2, "score": 2 - i % 3} for i in range(5)]
            + [{"author": "liked", "score": 1} for _ in range(4)] + [{"author": "liked", "score": 3}]
            + [{"author": "early", "score": 1} for _ in range(3)]
            + [{"author": "early", "score": 1, "retrieved_at": posted}]  # engagement unknown: not counted
            + [{"author": "early", "kind": "comment"}, {"author": "early", "link_url": None},
               {"author": "early", "body": "words"}, {"author": None}])
    table = _posts(rows)
    assert series_sizes(table).tolist() == [5] * 5 + [0] * 5 + [3] * 3 + [0] * 5
    found = doc_signals(table, ["u0", "u5", "u10", "missing"])
    assert found["series_size"].tolist() == [5, 0, 3, 0] and found["ignored"].tolist() == [False, True, True, False]


def test_the_rule_on_real_posts_agrees_with_a_plain_reading(default_lake: Path) -> None:  # noqa: ANN001
    from edumine.lake import Lake
    from edumine.models.topics.link_dumps import COLUMNS, ignored_link_posts

    table = Lake(default_lake).read_posts(columns=list(COLUMNS))
    posts = table.to_pandas()
    age = posts.retrieved_at - posts.created_at
    plain = ((posts.kind == "post") & posts.link_url.notna() & (posts.body.fillna("").str.strip() == "")
             & (posts.num_comments == 0) & (posts.score <= 1) & (age >= pd.Timedelta(days=1))
             & (posts.retrieval_estimated != True))  # noqa: E712
    flags = np.asarray(ignored_link_posts(table).to_pylist())
    assert np.array_equal(flags, plain.to_numpy()) and 100 < flags.sum() < 0.2 * (posts.kind == "post").sum()


@pytest.mark.slow
def test_no_topic_of_a_refit_is_mostly_ignored_link_posts(tmp_path: Path) -> None:
    """The stage reads the signals from the posts table: on a year of r/teaching's posts (TF-IDF vectors), no
    topic's core is half ignored link posts, no post of a spam series has a topic, and the run says what share
    of docs the checks moved."""
    import pyarrow.parquet as pq

    from conftest import make_config
    from test_topics import _sources

    from edumine.lake import Lake
    from edumine.models.topics.link_dumps import COLUMNS, ignored_link_posts, series_sizes
    from edumine.pipelines.runner import run_pipeline

    lake = tmp_path / "lake"
    config = make_config(lake, [{**_sources("2018-06-30")[0], "since": "2017-07-01"}],
                         topics={"bootstrap_resamples": 100})
    scores = run_pipeline(config, only=["preprocess", "topics"]).outputs["topics"]["scores"]
    posts = Lake(lake).read_posts(columns=list(COLUMNS))
    flagged = set(posts["uid"].filter(ignored_link_posts(posts)).to_pylist())
    assigned = pq.read_table(lake / "doc_topics" / "part-0.parquet").to_pandas()
    assigned["ignored"] = assigned.uid.isin(flagged)
    cores = assigned[assigned.core].groupby("topic_id").ignored.mean()
    assert len(cores) >= 10 and cores.max() < 0.5
    assert 0 < scores["link_dump_share"] <= scores["catchall_share"] < 0.2
    assert assigned[assigned.ignored].topic_id.eq(-1).mean() > assigned.topic_id.eq(-1).mean()
    series = set(posts["uid"].filter(pa.array(series_sizes(posts) >= 5)).to_pylist())
    assert assigned.uid.isin(series).sum() > 50 and (assigned[assigned.uid.isin(series)].topic_id == -1).all()
