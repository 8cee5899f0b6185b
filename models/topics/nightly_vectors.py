"""What a nightly topic update reads: the vectors of the docs it touches, and what the last run kept of the rest.

A nightly update (``models/topics/update.py``) assigns the new docs to the saved model's topics; every other
doc keeps its topic, and the saved model's embeddings of the topics it had do not change (a topic found in the
outlier pool is appended). So an old doc's closeness to its topic's embedding, which the stage reports as its
``probability`` and ranks representative docs by, is the one the last run computed. The last run keeps it per
doc beside its model (``doc_state.parquet``: uid, text hash, closeness), and a nightly run reads from the
embedding cache only the vectors of the docs that are new or whose text changed; docs the pool resolves
bring their (normalised) vectors in the pool table. A refit, or a state that does not fit this run's docs,
reads every vector (``DocVectors.all``), as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

DOC_STATE = "doc_state.parquet"  # in a saved topic model: uid, text_hash, closeness of every doc of its run


def save_doc_state(folder: Path, uids: list[str], hashes: list[str], closeness: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"uid": pa.array(uids, pa.string()), "text_hash": pa.array(hashes, pa.string()),
                             "closeness": pa.array(np.asarray(closeness, np.float32), pa.float32())}),
                   Path(folder) / DOC_STATE)


def load_doc_state(model_dir: Path | None) -> Any:
    """The doc state a saved model kept (an Arrow table), or None (saved before it existed, or unreadable)."""
    import pyarrow.parquet as pq

    path = Path(model_dir) / DOC_STATE if model_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return pq.read_table(path)
    except (OSError, ValueError) as exc:
        log.warning("topics: %s unreadable (%s); every vector is read", path, exc)
        return None


def nightly_rows(state: Any, plan_mode: str, uids: list[str], hashes: list[str]) -> dict[str, np.ndarray] | None:
    """For a run planned as a nightly update: the rows whose vectors it needs (new docs and docs whose text
    changed) and, for every row, the last run's topic and closeness (NaN / -2 where it had none). None when
    every vector must be read: a refit, or no doc state matching the last run's ``doc_topics``."""
    from edumine.models.topics.update import incremental_state_problem

    if plan_mode != "incremental" or incremental_state_problem(state) is not None:
        return None
    saved = load_doc_state(state.model_dir)
    doc_topics = state.doc_topics
    if saved is None or saved.num_rows != doc_topics.num_rows:
        return None
    position = {uid: row for row, uid in enumerate(saved["uid"].to_pylist())}
    saved_hashes = saved["text_hash"].to_pylist()
    saved_closeness = saved["closeness"].to_numpy(zero_copy_only=False)
    topic_of = dict(zip(doc_topics["uid"].to_pylist(), doc_topics["topic_id"].to_pylist()))
    if set(topic_of) != set(position):
        return None
    rows = np.array([position.get(uid, -1) for uid in uids], dtype=np.int64)
    known = rows >= 0
    changed = known & np.array([row >= 0 and saved_hashes[row] != h for row, h in zip(rows, hashes)], dtype=bool)
    closeness = np.full(len(uids), np.nan, dtype=np.float32)
    closeness[known] = saved_closeness[rows[known]]
    previous_topics = np.array([topic_of.get(uid, -2) for uid in uids], dtype=np.int64)
    return {"needed": np.flatnonzero(~known | changed), "closeness": closeness, "topics": previous_topics}


class DocVectors:
    """The docs' vectors (in the stage's uid order), embedded or read from the cache only where asked for.

    ``embed(rows)`` returns the vectors of those rows (None: every doc) and the embedding summary. With
    ``nightly`` (``nightly_rows``) only the rows it needs are read at first; ``all()`` reads the rest."""

    def __init__(self, embed: Callable[[np.ndarray | None], tuple[np.ndarray, dict[str, Any]]], n_docs: int,
                 nightly: dict[str, np.ndarray] | None = None) -> None:
        self._embed, self.n_docs, self.nightly = embed, n_docs, nightly
        self._all: np.ndarray | None = None
        if nightly is None:
            self._all, self.info = embed(None)
        else:
            needed = nightly["needed"]
            # No new doc: one doc's vector, for the width an empty selection must have.
            self._needed, self.info = embed(needed if len(needed) else np.arange(min(1, n_docs)))
            self._needed = self._needed[:len(needed)]
            self._slot = {int(row): slot for slot, row in enumerate(needed)}

    @property
    def partial(self) -> bool:
        """Only the needed rows are read (the rest come from the last run's state)."""
        return self._all is None

    def __len__(self) -> int:
        return self.n_docs

    def all(self) -> np.ndarray:
        if self._all is None:
            self._all, info = self._embed(None)
            self.info = {**info, "embedded": self.info["embedded"] + info["embedded"]}
        return self._all

    def rows(self, rows: np.ndarray) -> np.ndarray:
        if self._all is not None:
            return self._all[rows]
        return self._needed[[self._slot[int(row)] for row in rows]] if len(rows) else self._needed[:0]

    def touched(self, topics: np.ndarray) -> np.ndarray:
        """Rows a nightly update computes afresh: the needed ones and those whose topic changed (docs the
        outlier pool resolved); every other row keeps the last run's closeness."""
        mask = np.zeros(self.n_docs, dtype=bool)
        mask[self.nightly["needed"]] = True
        mask |= np.asarray(topics) != self.nightly["topics"]
        return np.flatnonzero(mask)

    def normalised(self, rows: np.ndarray, center: np.ndarray | None, uids: list[str], pool: Any) -> np.ndarray:
        """Centred unit vectors of ``rows``: from the needed rows' vectors, else from the outlier pool (which
        keeps its docs' vectors normalised the same way)."""
        from edumine.models.topics.model import normalise

        if self._all is not None:
            return normalise(self._all[rows], center)
        pooled = dict(zip(pool["uid"], pool["vector"])) if pool is not None else {}
        width = self._needed.shape[1] if self._needed.ndim == 2 else 0
        out = np.zeros((len(rows), width), dtype=np.float32)
        mine = np.array([int(row) in self._slot for row in rows], dtype=bool)
        if mine.any():
            out[mine] = normalise(self.rows(np.asarray(rows)[mine]), center)
        for slot in np.flatnonzero(~mine):
            out[slot] = np.asarray(pooled[uids[int(rows[slot])]], np.float32)  # KeyError: a row nobody kept
        return out

    def closeness(self, topics: np.ndarray, cosine: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  center: np.ndarray | None, uids: list[str], pool: Any) -> np.ndarray:
        """Every doc's closeness to its topic (``cosine(normalised vectors, topics)``, the model's rule): the last
        run's for rows no update touched, computed for the rest."""
        from edumine.models.topics.model import normalise

        if self._all is not None:
            return cosine(normalise(self._all, center), topics)
        out = self.nightly["closeness"].copy()
        rows = self.touched(topics)
        out[rows] = cosine(self.normalised(rows, center, uids, pool), np.asarray(topics)[rows])
        return out


def kept_coverage(previous: Any, doc_topics: Any, core: np.ndarray, needed: np.ndarray,
                  label_words: dict[int, list[str]]) -> dict[int, float | None] | None:
    """The label coverage the last run reported (``topics.label_coverage``), where a nightly update leaves it as it
    was: it is over each topic's core docs, and an update keeps the last refit's cores (less the docs that left)
    and the old topics' words. None (recount) when a core doc left or changed its text, or a topic's label
    words differ; a topic the update added has no core docs (None, as a recount gives)."""
    if previous is None or doc_topics is None or "core" not in doc_topics.column_names:
        return None
    if int(np.sum(core)) != int(np.sum(doc_topics["core"].to_numpy(zero_copy_only=False))) \
            or np.asarray(core)[needed].any():
        return None
    words = dict(zip(previous["topic_id"].to_pylist(), previous["top_terms"].to_pylist()))
    kept = dict(zip(previous["topic_id"].to_pylist(), previous["label_coverage"].to_pylist()))
    coverage: dict[int, float | None] = {}
    for topic_id, label in label_words.items():
        if topic_id not in words:
            coverage[topic_id] = None
        elif list(words[topic_id][:len(label)]) != list(label):
            return None
        else:
            coverage[topic_id] = kept[topic_id]
    return coverage
