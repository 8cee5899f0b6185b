"""NPMI and diversity: our vectorised NPMI equals gensim's CoherenceModel(c_npmi) on real posts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edumine.models.topics.evaluation import npmi_coherence, npmi_per_topic, topic_diversity


@pytest.fixture(scope="module")
def real_texts() -> list[list[str]]:
    """Lemmas of 400 real r/teaching posts (a small corpus so that gensim's loop stays fast)."""
    from itertools import islice

    import orjson
    import zstandard

    from conftest import CORPORA
    from edumine.models.text.preprocess import Preprocessor

    with open(CORPORA / "reddit-teaching-2017-18" / "teaching_submissions.zst", "rb") as handle:
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle)
        import io

        lines = islice(io.TextIOWrapper(reader, encoding="utf-8"), 1200)
        records = [orjson.loads(line) for line in lines]
    results = Preprocessor().process({"title": r.get("title"), "body": r.get("selftext")} for r in records)
    texts = [r.lemmas.split() for r in results if r.usable]
    return texts[:400]


TOPICS = [["student", "class", "teacher", "school", "year", "teach", "grade", "work", "time", "kid"],
          ["math", "reading", "book", "write", "lesson", "read", "idea", "activity", "help", "use"],
          ["job", "interview", "position", "district", "pay", "degree", "certification", "program", "hire", "apply"]]


@pytest.mark.parametrize("window", [10, 3, None])
def test_npmi_matches_gensim(real_texts: list[list[str]], window: int | None) -> None:
    from gensim.corpora import Dictionary
    from gensim.models.coherencemodel import CoherenceModel

    topics = [[w for w in topic if any(w in t for t in real_texts)] for topic in TOPICS]
    dictionary = Dictionary(real_texts)
    # gensim's window None means 10 for c_npmi; a window longer than every text is whole-document co-occurrence.
    gensim_window = window if window is not None else max(len(t) for t in real_texts) + 1
    model = CoherenceModel(topics=topics, texts=real_texts, dictionary=dictionary, coherence="c_npmi",
                           window_size=gensim_window, topn=10, processes=1)
    expected = model.get_coherence_per_topic()
    ours = npmi_per_topic(topics, real_texts, window_size=window)
    assert list(ours) == pytest.approx(expected, abs=1e-9)
    assert npmi_coherence(topics, real_texts, window_size=window) == pytest.approx(model.get_coherence(), abs=1e-9)


def test_npmi_separates_coherent_from_random_words(real_texts: list[list[str]]) -> None:
    coherent = [["interview", "job", "position", "hire", "district"]]
    from collections import Counter

    frequent = [w for w, _ in Counter(w for t in real_texts for w in t).most_common(400)[-5:]]
    assert npmi_coherence(coherent, real_texts) > npmi_coherence([frequent], real_texts)


def test_diversity_is_the_unique_share_of_top_words() -> None:
    assert topic_diversity([["a", "b"], ["c", "d"]]) == 1.0
    assert topic_diversity([["a", "b"], ["a", "b"]]) == 0.5
    assert topic_diversity([["a", "b", "c"], ["a", "x", "y"]], top_n=2) == 0.75
    assert math.isnan(topic_diversity([]))


def test_words_absent_from_the_reference_are_left_out(real_texts: list[list[str]]) -> None:
    topic = ["interview", "job", "position", "hire", "district"]
    with_ghost = npmi_per_topic([topic + ["zzzz-not-a-word"]], real_texts)[0]
    assert with_ghost == pytest.approx(npmi_per_topic([topic], real_texts)[0])


def test_npmi_is_the_same_chunked_and_from_a_generator(real_texts: list[list[str]], monkeypatch) -> None:  # noqa: ANN001
    """A million tokenised docs are scored from a generator, chunk by chunk: the score must not change."""
    from edumine.models.topics import evaluation

    whole = npmi_per_topic(TOPICS, real_texts)
    monkeypatch.setattr(evaluation, "CHUNK_DOCS", 7)
    chunked = npmi_per_topic(TOPICS, (text for text in real_texts))
    assert list(chunked) == pytest.approx(list(whole), abs=1e-12)


def test_label_coverage_is_the_share_of_docs_using_a_label_word() -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    from edumine.models.topics.evaluation import label_coverage

    docs = ["math lesson", "math test", "lesson plan", "field trip", "bus trip", "lunch duty"]
    vectorizer = CountVectorizer(token_pattern=r"\S+")
    counts = vectorizer.fit_transform(docs)
    topics = np.array([0, 0, 0, 1, 1, 1])
    core = np.array([True, True, True, True, True, False])
    coverage = label_coverage(counts, vectorizer.vocabulary_, {0: ["math", "ghost"], 1: ["trip"], 2: ["math"]},
                              topics, core)
    assert coverage == {0: pytest.approx(2 / 3, abs=1e-4), 1: 1.0, 2: None}  # doc 5 is not core; topic 2 has no docs
