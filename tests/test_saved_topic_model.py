"""A saved topic model is read back without importing bertopic (models/topics/saved.py), and is the same model.

The nightly topic update loads the last run's model; ``import bertopic`` alone cost it 10-23 s. The view must
hold what ``BERTopic.load`` holds (embeddings, topic words, sizes, vectorizer, c-TF-IDF, idf), assign new docs
to the same topics, and turn into the real BERTopic when it is changed (a new topic) or asked to transform.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edumine.lake import Lake


@pytest.fixture(scope="module")
def fitted(default_lake: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A topic model fitted on 800 r/teaching posts (the stage's default embedding backend) and saved, plus
    400 posts it has not seen."""
    import pyarrow.compute as pc

    from edumine.models.embeddings.backends import make_embedder
    from edumine.models.text.preprocess import Preprocessor
    from edumine.models.topics.model import TopicModel
    from edumine.pipelines.stages.topics import EmbeddingsConfig

    wanted = (pc.field("community") == "teaching") & (pc.field("kind") == "post")
    rows = sorted(Lake(default_lake).read_posts(columns=["uid", "title", "body", "link_url", "is_deleted"],
                                                filter=wanted).to_pylist(), key=lambda r: r["uid"])[:1600]
    docs = list(Preprocessor().process(rows))
    lemmas = [d.lemmas for d in docs if d.usable][:1200]
    settings = EmbeddingsConfig()
    vectors = make_embedder(settings.backend, **settings.params).fit(lemmas).encode(lemmas)
    model = TopicModel(n_clusters=15).fit(lemmas[:800], vectors[:800])
    folder = tmp_path_factory.mktemp("saved") / "model"
    model.save(folder, {"corpus_size": 800})
    return folder, lemmas, vectors


def test_the_view_holds_what_bertopic_load_holds(fitted) -> None:  # noqa: ANN001
    from bertopic import BERTopic

    from edumine.models.topics.saved import SavedBERTopic

    folder, lemmas, _ = fitted
    view, real = SavedBERTopic(folder / "bertopic"), BERTopic.load(str(folder / "bertopic"))
    np.testing.assert_array_equal(view.topic_embeddings_, real.topic_embeddings_)
    assert view.topic_embeddings_.dtype == real.topic_embeddings_.dtype
    assert view.get_topics() == real.get_topics() and view.topic_sizes_ == real.topic_sizes_
    assert view.topic_labels_ == real.topic_labels_ and view._outliers == real._outliers
    assert all(view.get_topic(t) == real.get_topic(t) for t in [*real.get_topics(), 999])
    assert (view.c_tf_idf_ != real.c_tf_idf_).nnz == 0 and view.c_tf_idf_.shape == real.c_tf_idf_.shape
    assert (view.ctfidf_model._idf_diag != real.ctfidf_model._idf_diag).nnz == 0
    assert view.vectorizer_model.get_params() == real.vectorizer_model.get_params()
    assert view.vectorizer_model.vocabulary_ == real.vectorizer_model.vocabulary_
    assert (view.vectorizer_model.transform(lemmas[:50]) != real.vectorizer_model.transform(lemmas[:50])).nnz == 0


def test_loaded_model_updates_like_bertopic_and_without_it(fitted, tmp_path: Path) -> None:  # noqa: ANN001
    """Nearest-topic assignment of unseen docs: the same through the view and through BERTopic.load; the
    nightly path (load, update, save) imports no bertopic; a copy saved from the view loads the same."""
    from bertopic import BERTopic

    from edumine.models.topics.model import TopicModel
    from edumine.models.topics.update import IncrementalTopicUpdate

    folder, lemmas, vectors = fitted
    view = TopicModel.load(folder)
    real = TopicModel.load(folder)
    real.model_ = BERTopic.load(str(folder / "bertopic"))
    uids = [f"u{i}" for i in range(800, len(lemmas))]
    settings = {"assign_min_similarity": 0.3, "pool_min_docs": 10_000}  # no new topic: the model stays as read
    a = IncrementalTopicUpdate(**settings).fit(view, uids, lemmas[800:], vectors[800:])
    b = IncrementalTopicUpdate(**settings).fit(real, uids, lemmas[800:], vectors[800:])
    np.testing.assert_array_equal(a.topics_, b.topics_)
    np.testing.assert_array_equal(a.scores_, b.scores_)
    assert (a.topics_ >= 0).any() and (a.topics_ == -1).any()
    np.testing.assert_array_equal(view._cosine_to_topic(vectors[800:], np.maximum(a.topics_, 0)),
                                  real._cosine_to_topic(vectors[800:], np.maximum(a.topics_, 0)))
    assert [view.label(t) for t in view.topic_ids()] == [real.label(t) for t in real.topic_ids()]

    view.save(tmp_path / "again", {"corpus_size": 800})
    again = TopicModel.load(tmp_path / "again")
    np.testing.assert_array_equal(again.model_.topic_embeddings_, view.model_.topic_embeddings_)
    assert again.model_.get_topics() == view.model_.get_topics()
    topics, scores = again.transform(lemmas[800:], vectors[800:])  # through BERTopic itself
    expected, expected_scores = real.transform(lemmas[800:], vectors[800:])
    np.testing.assert_array_equal(topics, expected)
    np.testing.assert_array_equal(scores, expected_scores)

    script = (
        "import sys, numpy as np\n"
        "from edumine.models.topics.model import TopicModel\n"
        "from edumine.models.topics.update import IncrementalTopicUpdate\n"
        f"m = TopicModel.load({str(folder)!r})\n"
        "IncrementalTopicUpdate(pool_min_docs=10_000).fit(m, ['x'], ['teacher student'], np.ones((1, "
        f"{vectors.shape[1]}), np.float32))\n"
        f"m.save({str(tmp_path / 'third')!r}, {{}})\n"
        "print(sorted(n for n in ('bertopic', 'umap', 'torch', 'transformers') if n in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_a_new_topic_turns_the_view_into_bertopic(fitted) -> None:  # noqa: ANN001
    from bertopic import BERTopic

    from edumine.models.topics.model import TopicModel
    from edumine.models.topics.update import add_topic

    folder, lemmas, vectors = fitted
    model = TopicModel.load(folder)
    before = len(model.topic_ids())
    topic_id = add_topic(model, np.ones(vectors.shape[1], np.float32), lemmas[800:820])
    assert isinstance(model.model_, BERTopic)
    assert topic_id == max(model.topic_ids()) and len(model.topic_ids()) == before + 1
