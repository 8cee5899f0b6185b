"""``embeddings.concat.v1``: several backends' vectors side by side, each part cached under its own key.

Each part is one registered backend with its parameters. A doc's vector is the parts' vectors, each
scaled to unit length, concatenated, so every part's cosine weighs the same in the topic model's cosine.
The parts are embedded through ``embed_with_cache`` under their own backend keys: a part that another
stage also uses (the theme stage's MiniLM over ``docs.text``, keyed by uid and ``docs.text_hash``) is read
from that stage's cache, not encoded again, and a rerun embeds only new docs. Nothing is cached under the
concatenation's own key.

On the fair benchmark (docs/topics.md) TF-IDF+SVD over the lemmas next to MiniLM over the clean text gave
the most coherent topics and the best agreement with the community of origin. It is the topic stage's default
whenever the theme stage embeds with MiniLM (``models/topics/shared_vectors.py``), with that encoder as its
second part; without parts given, the parts are ``DEFAULT_PARTS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edumine.models.embeddings.backends import (Embedder, EmbeddingCache, embed_with_cache, embedders,
                                                keep_fitted_state, make_embedder)

DEFAULT_PARTS: list[dict[str, Any]] = [
    {"backend": "embeddings.tfidf_svd.v1", "params": {"ngram_max": 1}},
    {"backend": "embeddings.minilm.v1", "params": {}},
]


@embedders.register("embeddings.concat.v1")
class ConcatEmbedder(Embedder):
    name = "embeddings.concat.v1"
    uses = "lemmas+text"

    def __init__(self, parts: list[dict[str, Any]] | None = None) -> None:
        self.parts = [dict(p) for p in (parts if parts is not None else DEFAULT_PARTS)]
        if len(self.parts) < 2:
            raise ValueError("embeddings.concat.v1 needs at least two parts: give params.parts as a list of "
                             "{backend, params}")
        self.embedders = [make_embedder(p["backend"], **(p.get("params") or {})) for p in self.parts]
        if any(isinstance(e, ConcatEmbedder) for e in self.embedders):
            raise ValueError("embeddings.concat.v1 parts cannot be concatenations themselves")

    def params(self) -> dict[str, Any]:
        return {"parts": [{"backend": e.name, "key": e.key} for e in self.embedders]}

    def encode(self, texts: list[str]) -> np.ndarray:
        raise TypeError("embeddings.concat.v1 embeds through its parts' caches: use embed_parts_with_cache")


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


def part_folder(folder: Path, index: int) -> Path:
    """Where part ``index``'s fitted state is kept beside a saved model (``keep_parts_state``)."""
    return Path(folder) / f"part-{index}"


def embed_parts_with_cache(embedder: ConcatEmbedder, cache_root: Path, uids: list[str], hashes: list[str],
                           lemmas: list[str], texts: list[str], *, state_sources: tuple[Path, ...] = (),
                           map: Any = None, workers: int = 1) -> tuple[np.ndarray, dict[str, Any]]:
    """The concatenated vectors, each part through ``embed_with_cache`` (its own key, shared with any stage
    that uses the same backend and parameters). ``state_sources``: folders a saved model kept its parts'
    fitted state in (``keep_parts_state``); ``map``/``workers`` as for ``embed_with_cache``."""
    pieces, infos = [], []
    for index, part in enumerate(embedder.embedders):
        inputs = lemmas if part.uses == "lemmas" else texts
        vectors, info = embed_with_cache(part, cache_root, uids, hashes, inputs, map=map, workers=workers,
                                         state_sources=tuple(part_folder(s, index) for s in state_sources))
        pieces.append(_unit(vectors))
        infos.append(info)
    return np.hstack(pieces), {"backend": embedder.name, "key": embedder.key,
                               "embedded": max(i["embedded"] for i in infos),
                               "from_cache": min(i["from_cache"] for i in infos),
                               "seconds": round(sum(i["seconds"] for i in infos), 2), "parts": infos}


def fitted_state_kept(embedder: Embedder, cache_root: Path, kept: Path | None) -> bool:
    """Whether every part of ``embedder`` that needs fitting has its fitted state, in the cache or in ``kept``
    (the folder a saved model keeps it in: ``keep_parts_state`` / ``keep_fitted_state``). Only then may a run
    embed some docs alone: else the state would be fitted on those docs."""
    concat = isinstance(embedder, ConcatEmbedder)
    for index, part in enumerate(embedder.embedders if concat else [embedder]):
        source = None if kept is None else part_folder(kept, index) if concat else kept
        if part.needs_fit and not (part.load_state(Path(cache_root) / part.base_key)
                                   or (source is not None and part.load_state(source))):
            return False
    return True


def cache_holds(embedder: Embedder, cache_root: Path, uids: list[str], hashes: list[str]) -> bool:
    """Whether the cache of every part of ``embedder`` (its fitted state loaded) holds these docs' vectors, from
    its index alone (no vector is read): a run that reads some docs' vectors only rebuilds a lost cache first."""
    for part in (embedder.embedders if isinstance(embedder, ConcatEmbedder) else [embedder]):
        index = EmbeddingCache(cache_root, part.key)._load()
        if any(pair not in index for pair in zip(uids, hashes)):
            return False
    return True


def keep_parts_state(embedder: ConcatEmbedder, cache_root: Path, folder: Path) -> None:
    """Copy each fitted part's state from its cache into ``folder/part-<i>`` (beside a saved model), which
    ``embed_parts_with_cache``'s ``state_sources`` restores a lost cache from."""
    for index, part in enumerate(embedder.embedders):
        keep_fitted_state(part, cache_root, part_folder(folder, index))


def cached_by_keys(cache_root: Path, keys: list[str], uids: list[str],
                   hashes: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
    """Cached vectors under one backend key, or under a concatenation's part keys (each part at unit
    length, as ``embed_parts_with_cache`` made them); None and all missing when a key has none of them."""
    if len(keys) == 1:
        return EmbeddingCache(cache_root, keys[0]).get(uids, hashes)
    pieces, missing = [], np.zeros(len(uids), dtype=bool)
    for key in keys:
        vectors, lacking = EmbeddingCache(cache_root, key).get(uids, hashes)
        if vectors is None:
            return None, np.ones(len(uids), dtype=bool)
        pieces.append(_unit(vectors))
        missing |= lacking
    return np.hstack(pieces), missing


def cached_vectors(embedder: Embedder, cache_root: Path, uids: list[str],
                   hashes: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
    """Cached vectors of any backend, a concatenation included."""
    keys = [part.key for part in embedder.embedders] if isinstance(embedder, ConcatEmbedder) else [embedder.key]
    return cached_by_keys(cache_root, keys, uids, hashes)
