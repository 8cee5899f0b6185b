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
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
