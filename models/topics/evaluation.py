"""Topic quality: NPMI coherence and topic diversity, vectorised for corpora of a million documents.

``npmi_coherence`` computes what gensim's ``CoherenceModel(coherence="c_npmi")`` computes (boolean sliding
windows of ``window_size`` tokens, every ordered pair of a topic's top words, epsilon 1e-12, mean per topic
then over topics; ``tests/test_coherence.py`` checks it against gensim), but with sparse matrix products
instead of a Python loop over windows: at 100 k documents it takes seconds, not minutes.
``window_size=None`` makes every document one window (document co-occurrence).

The counts behind the score (windows holding each word and each pair of the topics' top words, and the
number of windows) are integers summed over documents, so they can be kept and added to: ``Cooccurrence``
holds them; a nightly run adds its new documents' counts to the last run's (``Cooccurrence.add``) and gets
exactly the score a recount over the whole corpus gives, at the cost of the new documents only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EPSILON = 1e-12
CHUNK_DOCS = 20_000  # texts turned into window incidence at a time: memory stays flat at a million docs


def _present_spans(positions: list[int], window_size: int, n_windows: int) -> list[tuple[int, int]]:
    """Windows [start, stop) in which gensim's sliding window counts a word, given its positions in a text.

    gensim slides by dropping the token that leaves (position k-1) and adding the one that enters
    (k+W-1), and drops the word even when another occurrence of it is still inside the window. So an
    occurrence at q switches the word on at window max(0, q-W+1) and off at window q+1 (off before on
    at the same window); we reproduce that, not the textbook window, so that the scores agree.
    """
    events = sorted([(q + 1, 0) for q in positions] + [(max(0, q - window_size + 1), 1) for q in positions])
    spans, on_since, state = [], 0, False
    index = 0
    while index < len(events):
        time = events[index][0]
        new_state = state
        while index < len(events) and events[index][0] == time:
            new_state = events[index][1] == 1  # removals sort before additions at the same window
            index += 1
        if new_state and not state:
            on_since = time
        elif state and not new_state and time > on_since:
            spans.append((on_since, time))
        state = new_state
    if state:
        spans.append((on_since, n_windows))
    return [(a, min(b, n_windows)) for a, b in spans if a < min(b, n_windows)]


def _incidence(texts: Sequence[Sequence[str]], vocab: dict[str, int], window_size: int | None):  # noqa: ANN202
    """Boolean (windows x vocab) matrix of which relevant words each window holds, and the window count."""
    import scipy.sparse as sp

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    n_windows = 0
    for text in texts:
        length = len(text)
        windows = 1 if window_size is None or length < window_size else length - window_size + 1
        where: dict[int, list[int]] = {}
        for position, word in enumerate(text):
            column = vocab.get(word)
            if column is not None:
                where.setdefault(column, []).append(position)
        if where:
            if windows == 1:
                rows.append(np.full(len(where), n_windows, dtype=np.int64))
                cols.append(np.fromiter(where, dtype=np.int64, count=len(where)))
            else:
                for column, positions in where.items():
                    for start, stop in _present_spans(positions, window_size, windows):  # type: ignore[arg-type]
                        rows.append(np.arange(n_windows + start, n_windows + stop, dtype=np.int64))
                        cols.append(np.full(stop - start, column, dtype=np.int64))
        n_windows += windows
    if not rows:
        return sp.csr_matrix((n_windows, len(vocab)), dtype=np.float64), n_windows
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    matrix = sp.csr_matrix((np.ones(len(row), dtype=np.float64), (row, col)), shape=(n_windows, len(vocab)))
    matrix.data[:] = 1.0  # duplicates were summed: back to presence
    return matrix, n_windows


def _cooccurrence(texts: Iterable[Sequence[str]], vocab: dict[str, int],
                  window_size: int | None, progress: Any = None) -> tuple[np.ndarray, int]:
    """Windows holding each pair of words (the diagonal: each word), and the number of windows, summed over
    chunks of CHUNK_DOCS texts (counts are integers, so the sum is exact whatever the chunking). ``progress``
    (an ``edumine.progress.Progress``) advances per chunk."""
    co = np.zeros((len(vocab), len(vocab)), dtype=np.float64)
    n_windows = 0
    iterator = iter(texts)
    while chunk := list(islice(iterator, CHUNK_DOCS)):
        matrix, windows = _incidence(chunk, vocab, window_size)
        co += (matrix.T @ matrix).toarray()
        n_windows += windows
        if progress is not None:
            progress.advance(len(chunk))
    return co, n_windows


@dataclass
class Cooccurrence:
    """Sliding-window counts over a corpus for a fixed word list: ``co[i, j]`` windows holding words i and j
    (the diagonal: windows holding word i), ``n_windows`` windows in all, ``docs`` documents counted."""

    words: list[str]
    co: np.ndarray
    n_windows: int
    docs: int
    window_size: int | None

    @classmethod
    def count(cls, words: Iterable[str], texts: Iterable[Sequence[str]], window_size: int | None,
              progress: Any = None) -> Cooccurrence:
        words = sorted(set(words))
        counted = _Counted(texts)
        co, n_windows = _cooccurrence(counted, {word: i for i, word in enumerate(words)}, window_size, progress)
        return cls(words, co, n_windows, counted.n, window_size)

    def add(self, texts: Iterable[Sequence[str]], progress: Any = None) -> Cooccurrence:
        """These counts plus those of ``texts`` (new documents), as a new object."""
        other = Cooccurrence.count(self.words, texts, self.window_size, progress)
        return Cooccurrence(self.words, self.co + other.co, self.n_windows + other.n_windows,
                            self.docs + other.docs, self.window_size)

    def covers(self, topics: Sequence[Sequence[str]], top_n: int) -> bool:
        known = set(self.words)
        return all(word in known for topic in topics for word in list(topic)[:top_n])

    def npmi_per_topic(self, topics: Sequence[Sequence[str]], top_n: int = 10) -> np.ndarray:
        vocab = {word: index for index, word in enumerate(self.words)}
        return _npmi_scores(topics, vocab, self.co, self.n_windows, top_n)

    def save(self, path: Path) -> None:
        np.savez(path, words=np.array(self.words, dtype=object), co=self.co,
                 meta=np.array([self.n_windows, self.docs, -1 if self.window_size is None else self.window_size]))

    @classmethod
    def load(cls, path: Path) -> Cooccurrence:
        with np.load(path, allow_pickle=True) as data:
            n_windows, docs, window = (int(v) for v in data["meta"])
            return cls([str(w) for w in data["words"]], data["co"], n_windows, docs, None if window < 0 else window)


class _Counted:
    """An iterable that counts what passed through it."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items, self.n = items, 0

    def __iter__(self):  # noqa: ANN204
        for item in self.items:
            self.n += 1
            yield item


def _npmi_scores(topics: Sequence[Sequence[str]], vocab: dict[str, int], co: np.ndarray, n_windows: int,
                 top_n: int) -> np.ndarray:
    if n_windows == 0:
        return np.full(len(topics), np.nan)
    occurrences = np.diag(co).copy()
    scores = []
    for topic in topics:
        # A word that never occurs in the reference texts (a tokenisation mismatch) has no probability:
        # gensim would return inf; we leave it out and score the topic on the words that do occur.
        ids = [vocab[word] for word in list(topic)[:top_n] if occurrences[vocab[word]] > 0]
        if len(ids) < 2:
            scores.append(np.nan)
            continue
        index = np.array(ids)
        pair_prob = co[np.ix_(index, index)] / n_windows
        word_prob = occurrences[index] / n_windows
        with np.errstate(divide="ignore", invalid="ignore"):
            pmi = np.log((pair_prob + EPSILON) / np.outer(word_prob, word_prob))
            npmi = pmi / -np.log(pair_prob + EPSILON)
        off_diagonal = ~np.eye(len(ids), dtype=bool)
        scores.append(float(np.mean(npmi[off_diagonal])))
    return np.array(scores)


def npmi_per_topic(topics: Sequence[Sequence[str]], texts: Iterable[Sequence[str]], *, top_n: int = 10,
                   window_size: int | None = 10) -> np.ndarray:
    """NPMI of each topic's first ``top_n`` words over ``texts`` (token lists, any iterable: a generator keeps
    a million tokenised docs out of memory). NaN for a topic with < 2 words."""
    words = {word for topic in topics for word in list(topic)[:top_n]}
    return Cooccurrence.count(words, texts, window_size).npmi_per_topic(topics, top_n)


def mean_npmi(scores: np.ndarray) -> float:
    scores = scores[~np.isnan(scores)]
    return float(scores.mean()) if len(scores) else float("nan")


def npmi_coherence(topics: Sequence[Sequence[str]], texts: Iterable[Sequence[str]], *, top_n: int = 10,
                   window_size: int | None = 10) -> float:
    """Mean NPMI over topics (gensim's c_npmi with the given window; ``None``: whole documents)."""
    scores = npmi_per_topic(topics, texts, top_n=top_n, window_size=window_size)
    scores = scores[~np.isnan(scores)]
    return float(scores.mean()) if len(scores) else float("nan")


def topic_diversity(topics: Sequence[Sequence[str]], *, top_n: int = 25) -> float:
    """Share of unique words among all topics' first ``top_n`` words (1.0: no word shared)."""
    words = [word for topic in topics for word in list(topic)[:top_n]]
    return len(set(words)) / len(words) if words else float("nan")


def label_coverage(counts: Any, vocabulary: dict[str, int], label_words: dict[int, list[str]], topics: np.ndarray,
                   mask: np.ndarray) -> dict[int, float | None]:
    """Share of each topic's docs (those where ``mask`` holds, e.g. its core) that use at least one of its
    label words, from the (docs x vocabulary) ``counts``. A coherent topic's label words are in most of its
    docs; a catch-all cluster of short or unrelated posts gets a label of words that few of them use (under
    0.2 on real posts, against 0.6 to 1.0). None when the topic has no such docs or no label word."""
    coverage: dict[int, float | None] = {}
    for topic_id, words in label_words.items():
        rows = np.flatnonzero((topics == topic_id) & mask)
        columns = [vocabulary[word] for word in words if word in vocabulary]
        if not len(rows) or not columns:
            coverage[topic_id] = None
            continue
        coverage[topic_id] = round(float(np.mean(counts[rows][:, columns].getnnz(axis=1) > 0)), 4)
    return coverage


NPMI_COUNTS = "npmi_counts.npz"  # in a saved topic model: the co-occurrence counts its NPMI came from
NPMI_TOP_N = 10


def npmi_counts(prior: Any, info: dict[str, Any], uids: list[str], lemmas: list[str], analyzer: Any,
                top_words: list[list[str]], window: int | None) -> tuple[Any, str]:
    """The co-occurrence counts of the topics' top words over every doc of this run, and how they were got.

    A nightly update adds the new docs' counts to those the last run saved with its model: the same integers a
    recount gives, so the same NPMI (``models/topics/evaluation.py``). Recounted over all docs after a refit,
    or when the saved counts do not fit (no file, another window, a top word they lack because the update
    added a topic, or docs that left the corpus)."""
    from edumine.progress import Progress

    saved = prior.model_dir / NPMI_COUNTS if prior.model_dir is not None else None
    if info.get("mode") == "incremental" and saved is not None and saved.is_file() and prior.doc_topics is not None:
        try:
            old = Cooccurrence.load(saved)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("topics: saved NPMI counts unreadable (%s); recounting", exc)
        else:
            known = set(prior.doc_topics["uid"].to_pylist())
            fresh = [row for row, uid in enumerate(uids) if uid not in known]
            if old.window_size == window and old.covers(top_words, NPMI_TOP_N) \
                    and old.docs == len(known) == len(uids) - len(fresh):
                with Progress("topics: NPMI counts (new docs)", total=len(fresh), logger=log) as progress:
                    added = old.add((analyzer(lemmas[row]) for row in fresh), progress)
                return added, f"the last run's counts plus {len(fresh)} new docs"
    words = {word for topic in top_words for word in topic[:NPMI_TOP_N]}
    with Progress("topics: NPMI counts", total=len(lemmas), logger=log) as progress:
        counted = Cooccurrence.count(words, (analyzer(text) for text in lemmas), window, progress)
    return counted, f"counted over all {len(uids)} docs"
