"""Catch-all clusters: found by their label coverage and moved to the outliers before topics are ranked.

A clustering of real posts always has a few clusters that are not about anything: a spam series (the
titles of one poster's link posts, "(From the Desk of MargaretB) Part Three: ..."), link dumps whose text is
a list of titles, and near-empty texts that land together because they share no content with anything
else. c-TF-IDF still gives such a cluster words, but they are names used in a handful of its posts, so few
of its posts contain any of its label words. ``label_coverage`` (edumine.models.topics.evaluation) measures that:
the share of a topic's core docs that use at least one of its four label words, 0.6 to 1.0 for a coherent
topic and under 0.2 for a catch-all on the shared corpora (docs/topics.md).

``catchall_topics`` returns the topics under ``max_coverage``; ``TopicModel`` (``catchall_coverage``)
sends their docs to the outliers, marks them in ``catchall_`` and computes the topic words and embeddings
again without them, so the ranking by size that a researcher reads starts with real topics. A catch-all doc
is not assigned to a topic by similarity afterwards either (``outliers: nearest``): it is the noise, not a
doc that missed a core.

A core can pass the test and its topic still end up a catch-all: ``outliers: nearest`` then gives it the
non-core docs nearest its centroid, and when those share none of its words (news-headline link posts near a
core about one story) the topic's coverage over all its docs falls. From ``topics.kmeans.v3`` on, a second
check (``assigned_coverage``, 0.2) runs after that assignment over each topic's assigned docs too:
``drop_diluted_topics`` sends a topic under it, core and assigned docs, to the outliers as the first check
does, and assigns the other non-core docs again.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LABEL_WORDS = 4


def topic_coverage(model: Any, lemmas: list[str], topics: np.ndarray, core: np.ndarray) -> dict[int, float | None]:
    """Label coverage of each real topic of a fitted BERTopic ``model`` over its core docs."""
    from edumine.models.topics.evaluation import label_coverage

    vectorizer = model.vectorizer_model
    counts = vectorizer.transform(lemmas)
    words = {int(t): [w for w, _ in (model.get_topic(t) or [])[:LABEL_WORDS] if w]
             for t in model.get_topics() if t != -1}
    return label_coverage(counts, vectorizer.vocabulary_, words, np.asarray(topics), np.asarray(core))


def catchall_topics(coverage: dict[int, float | None], max_coverage: float) -> list[int]:
    """Topics whose label words are in fewer than ``max_coverage`` of their core docs (a topic without
    label words or without core docs counts as a catch-all too)."""
    return sorted(t for t, share in coverage.items() if share is None or share < max_coverage)


class GivenClusters:
    """A "clusterer" that returns labels computed before: lets BERTopic compute topic words and embeddings
    for a clustering that was corrected after its first fit."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = np.asarray(labels)

    def fit(self, X: Any, y: Any = None) -> GivenClusters:
        self.labels_ = self.labels
        return self

    def predict(self, X: Any) -> np.ndarray:
        raise RuntimeError("GivenClusters only replays a fit; new docs go to the nearest topic embedding")


def _refit_without(estimator: Any, model: Any, lemmas: list[str], vectors: np.ndarray,
                   labels: np.ndarray) -> tuple[Any, np.ndarray]:
    """BERTopic's topic words and embeddings again for the clusters in ``labels`` (-1: outside every core);
    returns the new model and its topic per doc (BERTopic numbers the topics by size again)."""
    from bertopic.dimensionality import BaseDimensionalityReduction

    good = sorted(set(labels.tolist()) - {-1})
    renumber = {old: new for new, old in enumerate(good)}
    labels = np.array([renumber.get(t, -1) for t in labels.tolist()], dtype=np.int64)
    model = estimator._bertopic(len(lemmas), BaseDimensionalityReduction(), GivenClusters(labels))
    topics, _ = model.fit_transform(lemmas, embeddings=vectors)
    return model, np.asarray(topics)


def drop_core_catchalls(estimator: Any, model: Any, lemmas: list[str], vectors: np.ndarray, topics: np.ndarray,
                        ignored: np.ndarray, series: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """The docs of spam series (``series``), catch-all topics (label coverage over their cores under
    ``catchall_coverage_``) and link dumps (at least ``link_dump_share_`` of their cores ``ignored``) go to the
    outliers, with the non-core docs nearest a dropped topic; the words and embeddings of the other topics are
    computed again from their clusters, series docs left out (edumine.models.topics.link_dumps). The checks
    count a cluster without its series docs. Sets ``estimator.catchall_centroids_`` and, when it moves them,
    ``estimator.link_dumps_`` (the estimator's fit sets it to none moved first)."""
    from edumine.models.topics.link_dumps import link_dump_topics
    from edumine.models.topics.model import nearest_topics, topic_matrix

    core = (topics != -1) & ~series
    bad = (catchall_topics(topic_coverage(model, lemmas, topics, core), estimator.catchall_coverage_)
           if estimator.catchall_coverage_ > 0 else [])
    dumps = link_dump_topics(ignored, topics, core, estimator.link_dump_share_)
    bad = sorted(set(bad) | set(dumps))
    catchall = np.isin(topics, bad) | series
    if not catchall.any():
        return model, topics, catchall
    matrix, ids = topic_matrix(model)
    # Kept with the model: a nightly update sends new docs nearest a dropped catch-all to the outliers too.
    estimator.catchall_centroids_ = matrix[np.isin(ids, bad)]
    rows = np.flatnonzero(topics == -1)
    nearest, score = nearest_topics(vectors, matrix, ids, rows)
    joined = np.isin(nearest, bad) & (score >= estimator.outlier_threshold_)
    catchall[rows[joined]] = True
    kept = np.where(catchall, -1, topics)
    if len(set(kept.tolist()) - {-1}) < 2:
        log.warning("topics: %d of %d clusters are catch-alls or link dumps, or spam series fill them; keeping "
                    "them all", len(bad), len(ids))
        estimator.catchall_centroids_ = matrix[:0]
        return model, topics, np.zeros(len(topics), dtype=bool)
    estimator.link_dumps_ = np.isin(topics, dumps) | series
    estimator.link_dumps_[rows[joined & np.isin(nearest, dumps)]] = True
    log.info("topics: %d catch-all clusters, %d link dumps and %d spam-series posts (%d docs in all, %.1f%%; "
             "link dumps and series %d) moved to the outliers", len(set(bad) - set(dumps)), len(dumps),
             int(series.sum()), int(catchall.sum()), 100 * catchall.mean(), int(estimator.link_dumps_.sum()))
    model, topics = _refit_without(estimator, model, lemmas, vectors, kept)
    return model, topics, catchall


def drop_diluted_topics(estimator: Any, model: Any, lemmas: list[str], vectors: np.ndarray, topics: np.ndarray,
                        core: np.ndarray, catchall: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """The second check (``assigned_coverage_``), after non-core docs joined their nearest topic: a topic
    whose label words are in fewer than that share of all its docs is a catch-all too. Its docs, core and
    assigned, go to the outliers (``catchall``), its centroid joins ``catchall_centroids_``, the other
    topics' words and embeddings are computed again from their cores, and the remaining non-core docs are
    assigned again. Returns the model, the topics, the core and the docs it moved (``diluted``: to be added
    to ``catchall``)."""
    from edumine.models.topics.model import assign_to_nearest, topic_matrix

    coverage = topic_coverage(model, lemmas, topics, np.ones(len(topics), dtype=bool))
    bad = catchall_topics(coverage, estimator.assigned_coverage_)
    diluted = np.isin(topics, bad)
    if not bad:
        return model, topics, core, diluted
    kept = np.where(core & ~diluted, topics, -1)
    matrix, ids = topic_matrix(model)
    if len(set(kept.tolist()) - {-1}) < 2:
        log.warning("topics: %d of %d topics are diluted catch-alls; keeping them all", len(bad), len(ids))
        return model, topics, core, np.zeros(len(topics), dtype=bool)
    log.info("topics: %d topics diluted by nearest assignment (%d docs, %.1f%%) moved to the outliers",
             len(bad), int(diluted.sum()), 100 * diluted.mean())
    estimator.catchall_centroids_ = np.vstack([estimator.catchall_centroids_, matrix[np.isin(ids, bad)]])
    model, topics = _refit_without(estimator, model, lemmas, vectors, kept)
    catchall = catchall | diluted
    core = topics != -1
    if estimator.outliers == "nearest":
        topics = assign_to_nearest(vectors, topics, *topic_matrix(model), estimator.outlier_threshold_)
        topics[catchall] = -1
    return model, topics, core, diluted
