"""Corpora and document vectors for the fair topic benchmark, each computed once and cached.

    .venv/bin/python benchmarks/fair_corpus.py --corpus real10k --vectors minilm tfidf

Corpora (from the real posts of ../shared/corpora, collected once by topics_benchmark.base_records):

- ``real10k`` / ``real100k``: benchmarks/scaled_corpus.py at 10,000 / 100,000 records;
- ``demo``: every real post and comment of the four corpora, in uid order (what `make demo`'s topic stage models:
  10,786 usable docs, the corpus of issue 17's table);
- ``top0913``: the 2009-13 all-time top posts of six communities (community = subreddit: the AMI target);
- ``teaching1718``: r/teaching, 2017-07 .. 2018-06.

Each corpus is preprocessed once (edumine's Preprocessor, default settings) and stored as
``benchmarks/out/corpus-<name>.json.gz`` (uid, community, created_at, clean text, lemmas, usable).
Vectors are stored per corpus and model as ``benchmarks/out/vectors-<name>-<model>.npz`` with the
seconds the encoding took, so every variant and seed reuses them and the timing still counts them:

- ``minilm``: ``embeddings.minilm.v1`` (fp32, as BERTopic's default runs it) over the clean text of every
  usable doc, through edumine's ``EmbeddingCache`` under benchmarks/out/cache (keyed by uid and text hash:
  the three real corpora share their posts, so each post is encoded once). The seconds are the corpus's
  docs times the measured seconds per doc.
- ``int8``: the theme stage's encoder (MiniLM int8 ONNX with the default classifier's parameters), the
  vectors the topic stage shares with it; the seconds are this encoding's wall time on every CPU.
- ``tfidf``: ``embeddings.tfidf_svd.v1`` with the topic stage's parameters, fitted on the corpus.

``signals(data)``: per usable doc, the link-post signals (edumine.models.topics.link_dumps: an ignored link post,
the size of its spam series) that the topic stage passes to ``TopicModel.fit`` from the posts table; a scaled
copy (``<uid>#copy<k>``) has its real post's (its authors are the copy's own, so it has series of the same
sizes). The real posts' signals are computed once from a scratch lake of the shared corpora
(``benchmarks/out/signals-real.json``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "benchmarks"))
log = logging.getLogger("fair_corpus")

CORPORA = ("real10k", "real100k", "demo", "top0913", "teaching1718")


def _records(name: str) -> list[dict[str, Any]]:
    from scaled_corpus import scaled_records
    from topics_benchmark import base_records

    base = base_records(ROOT / "data" / "cache" / "bench")
    if name == "real10k":
        return list(scaled_records(base, 10_000))
    if name == "real100k":
        return list(scaled_records(base, 100_000))
    if name == "demo":  # every real record, as `make demo`'s topic stage reads them (issue 17's table: 10,786 usable)
        return list(base)
    if name == "top0913":
        return [r for r in base if r["created_at"][:4] <= "2013"]
    if name == "teaching1718":
        return [r for r in base
                if r["community"].lower() == "teaching" and "2017-07" <= r["created_at"][:7] <= "2018-06"]
    raise SystemExit(f"unknown corpus {name!r}; use one of {', '.join(CORPORA)}")


def corpus(name: str) -> dict[str, Any]:
    """Usable docs of a corpus: uids, communities, dates, clean texts, lemma strings, and how many records
    it had (the preprocessing seconds are stored too)."""
    path = OUT / f"corpus-{name}.json.gz"
    if not path.exists():
        from edumine.models.text.preprocess import Preprocessor

        records = _records(name)
        started = time.perf_counter()
        docs = list(Preprocessor().process(records))
        seconds = time.perf_counter() - started
        keep = [i for i, d in enumerate(docs) if d.usable]
        data = {"name": name, "records": len(records), "preprocess_seconds": round(seconds, 2),
                "uid": [records[i]["uid"] for i in keep], "community": [records[i]["community"] for i in keep],
                "created_at": [records[i]["created_at"] for i in keep], "text": [docs[i].text for i in keep],
                "lemmas": [docs[i].lemmas for i in keep],
                "reasons": {r: sum(1 for d in docs if d.reason == r) for r in {d.reason for d in docs} if r}}
        OUT.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            json.dump(data, handle)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def signals(data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per usable doc of ``data`` (a ``corpus``): the link-post signals of ``TopicModel.fit`` (module docstring)."""
    path = OUT / "signals-real.json"
    if not path.exists():
        import os
        import tempfile

        sys.path.insert(0, str(ROOT / "tests"))
        os.environ.setdefault("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key")
        from conftest import make_config

        from edumine.lake import Lake
        from edumine.models.topics.link_dumps import COLUMNS, doc_signals
        from edumine.pipelines.runner import run_collect

        lake = Path(tempfile.mkdtemp()) / "lake"
        run_collect(make_config(lake))
        posts = Lake(lake).read_posts(columns=list(COLUMNS))
        uids = posts["uid"].to_pylist()
        found = doc_signals(posts, uids)
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"posts": len(uids), "ignored": [u for u, f in zip(uids, found["ignored"]) if f],
                                    "series_size": {u: int(n) for u, n in zip(uids, found["series_size"]) if n}})
                        + "\n")
    stored = json.loads(path.read_text())
    flagged, sizes = set(stored["ignored"]), stored["series_size"]
    real = [uid.split("#copy")[0] for uid in data["uid"]]
    return {"ignored": np.array([uid in flagged for uid in real], dtype=bool),
            "series_size": np.array([sizes.get(uid, 0) for uid in real], dtype=np.int64)}


def vectors(name: str, model: str, workers: int = 1, engine: str = "torch") -> tuple[np.ndarray, float]:
    """(vectors of the corpus's usable docs, seconds it cost to make them)."""
    path = OUT / f"vectors-{name}-{model}.npz"
    if not path.exists():
        data = corpus(name)
        if model == "minilm" and engine == "onnx-fp32":
            matrix, seconds = _minilm_onnx_fp32(data)
        elif model == "minilm":
            matrix, seconds = _minilm(data, workers)
        elif model == "tfidf":
            from edumine.models.embeddings.backends import make_embedder
            from edumine.pipelines.stages.topics import TopicsConfig

            settings = TopicsConfig().embeddings
            started = time.perf_counter()
            embedder = make_embedder("embeddings.tfidf_svd.v1", **settings.params)
            matrix = embedder.fit(data["lemmas"]).encode(data["lemmas"])
            seconds = time.perf_counter() - started
        elif model == "int8":
            matrix, seconds = _theme_encoder(data)
        elif model == "static":
            # The theme option's encoder (embeddings.static_minilm.v1 over the text the theme stage reads): the
            # vectors a topic stage would share with it. Its one-off build is not counted, only the encoding.
            from edumine.models.embeddings.backends import make_embedder

            embedder = make_embedder("embeddings.static_minilm.v1")
            embedder.encode(["warm up: the model is built or loaded here, outside the timing"])
            started = time.perf_counter()
            matrix = embedder.encode(list(data["text"]))
            seconds = time.perf_counter() - started
        else:
            raise SystemExit(f"unknown vectors {model!r}; use minilm, tfidf, int8 or static")
        np.savez(path, vectors=matrix.astype(np.float32), seconds=np.float64(seconds))
    with np.load(path) as stored:
        return stored["vectors"], float(stored["seconds"])


def _theme_encoder(data: dict[str, Any]) -> tuple[np.ndarray, float]:
    """The theme stage's own vectors: its default classifier's encoder (``embeddings.minilm_onnx.v1``, int8,
    with the classifier's parameters) over the clean text, on every CPU as the stage runs it. These are the
    vectors a topic stage shares with the theme stage; the seconds are this encoding's wall time."""
    from edumine.models.embeddings.backends import embed_with_cache, make_embedder
    from edumine.models.themes.config import ThemesConfig
    from edumine.models.topics.shared_vectors import theme_encoder

    name, params = theme_encoder(ThemesConfig())
    embedder = make_embedder(name, **params)
    hashes = [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in data["text"]]
    started = time.perf_counter()
    matrix, info = embed_with_cache(embedder, OUT / "cache" / "embeddings", list(data["uid"]), hashes,
                                    list(data["text"]), batch=2_000)
    seconds = time.perf_counter() - started
    log.info("theme encoder %s over %s: %s, %.0f s", name, data["name"], info, seconds)
    return matrix, seconds


def _minilm_onnx_fp32(data: dict[str, Any]) -> tuple[np.ndarray, float]:
    """The same MiniLM vectors from ONNX Runtime in float32 (``embeddings.minilm_onnx.v1`` with
    ``quantize: false``: cosine >= 0.9999998 to sentence-transformers' fp32 vectors), batched on every CPU: about
    3x faster here, for corpora where the torch encoder would take most of an hour. The seconds charged are
    still sentence-transformers' own, one thread per doc, from the torch chunks encoded before (at least 500
    docs in ``seconds_per_doc.json``), so a peer's time is what its default encoder costs."""
    from edumine.models.embeddings.backends import embed_with_cache, make_embedder

    torch_key = make_embedder("embeddings.minilm.v1", bf16=False, threads=1).key
    rate_path = OUT / "cache" / "embeddings" / torch_key / "seconds_per_doc.json"
    timings = json.loads(rate_path.read_text()) if rate_path.exists() else {"docs": 0, "seconds": 0.0}
    if timings["docs"] < 500:
        raise SystemExit(f"no torch rate measured yet ({timings['docs']} docs in {rate_path}): run --vectors "
                         "minilm on a few thousand docs first (Ctrl-C after the first chunks)")
    embedder = make_embedder("embeddings.minilm_onnx.v1", quantize=False)
    hashes = [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in data["text"]]
    matrix, info = embed_with_cache(embedder, OUT / "cache" / "embeddings", list(data["uid"]), hashes,
                                    list(data["text"]), batch=2_000)
    per_doc = timings["seconds"] / timings["docs"]
    log.info("minilm (ONNX fp32) %s: %s; charged at sentence-transformers' %.1f docs/s per thread (%d docs timed)",
             data["name"], info, 1 / per_doc, timings["docs"])
    return matrix, per_doc * len(data["uid"])


def _minilm(data: dict[str, Any], workers: int = 1) -> tuple[np.ndarray, float]:
    """MiniLM fp32 vectors of the usable docs (cached by uid and text hash) and their cost: the encoding's
    seconds per doc on one thread (``threads=1``, summed over chunks) times the docs. ``workers`` processes
    encode chunks side by side (each on one thread, so the per-doc cost is the same as with one); only this
    process writes the cache."""
    from edumine.models.embeddings.backends import EmbeddingCache, make_embedder

    embedder = make_embedder("embeddings.minilm.v1", bf16=False, threads=1)
    cache_root = OUT / "cache" / "embeddings"
    uids = list(data["uid"])
    hashes = [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in data["text"]]
    cache = EmbeddingCache(cache_root, embedder.key)
    matrix, missing = cache.get(uids, hashes)
    todo = np.flatnonzero(missing)
    rate_path = cache.folder / "seconds_per_doc.json"
    timings = json.loads(rate_path.read_text()) if rate_path.exists() else {"docs": 0, "seconds": 0.0}
    chunks = [todo[start: start + 500] for start in range(0, len(todo), 500)]  # small: a killed run keeps its work
    texts = [[data["text"][i] for i in rows] for rows in chunks]
    if workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap(_encode_chunk, texts)
    else:
        pool, results = None, map(_encode_chunk, texts)
    done = 0
    for rows, (fresh, seconds) in zip(chunks, results):
        timings["seconds"] += seconds
        timings["docs"] += len(rows)
        cache.put([uids[i] for i in rows], [hashes[i] for i in rows], fresh)
        rate_path.write_text(json.dumps(timings))
        if matrix is None:
            matrix = np.zeros((len(uids), fresh.shape[1]), dtype=np.float32)
        matrix[rows] = fresh
        done += len(rows)
        log.info("minilm %s: %d/%d encoded (%.1f docs/s per thread)", data["name"], done, len(todo),
                 timings["docs"] / max(timings["seconds"], 1e-9))
    if pool is not None:
        pool.close()
    per_doc = timings["seconds"] / max(timings["docs"], 1)
    return matrix, per_doc * len(uids)


_ENCODER: Any = None


def _encode_chunk(texts: list[str]) -> tuple[np.ndarray, float]:
    """(fp32 MiniLM vectors of ``texts`` on one thread, the seconds it took); the model is loaded once per process."""
    global _ENCODER
    if _ENCODER is None:
        from edumine.models.embeddings.backends import make_embedder

        _ENCODER = make_embedder("embeddings.minilm.v1", bf16=False, threads=1)
    began = time.perf_counter()
    fresh = _ENCODER.encode(texts)
    return np.asarray(fresh, dtype=np.float32), time.perf_counter() - began


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", default=["real10k"], choices=CORPORA)
    parser.add_argument("--vectors", nargs="*", default=[], choices=["minilm", "tfidf", "int8"])
    parser.add_argument("--workers", type=int, default=1,
                        help="processes encoding MiniLM chunks side by side (each on one thread; the cost per doc "
                             "that the benchmark charges is unchanged)")
    parser.add_argument("--minilm-engine", choices=("torch", "onnx-fp32"), default="torch",
                        help="onnx-fp32: the MiniLM vectors from ONNX Runtime in float32 (see _minilm_onnx_fp32)")
    args = parser.parse_args()
    for name in args.corpus:
        data = corpus(name)
        found = signals(data)
        log.info("%s: %d records, %d usable, reasons %s; %d ignored link posts, %d in a series of 5 or more", name,
                 data["records"], len(data["uid"]), data["reasons"], int(found["ignored"].sum()),
                 int((found["series_size"] >= 5).sum()))
        for model in args.vectors:
            matrix, seconds = vectors(name, model, args.workers, args.minilm_engine)
            log.info("%s %s: %s in %.1f s", name, model, matrix.shape, seconds)


if __name__ == "__main__":
    main()
