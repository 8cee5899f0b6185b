"""Preprocessing, embedding and topic-fit benchmark: edumine's default against BERTopic's default pipeline.

The fair comparison of issue 17 (every model's words from the same lemmas, one scorer, seeds, turftopic,
catch-alls among the largest topics, AMI against the community) is benchmarks/topics_fair.py, on corpora
and cached vectors from benchmarks/fair_corpus.py; this script keeps the whole-pipeline speed figures.

    .venv/bin/python benchmarks/topics_benchmark.py --n 10000 [--minilm-dir DIR] [--out benchmarks/out]

On ``N`` real posts scaled from ../shared/corpora (benchmarks/scaled_corpus.py) it measures, in one run:
preprocessing docs/s; docs/s of each embedding backend (MiniLM on a CPU sample of ``--minilm-sample``
docs); topic-fit time and peak RSS of edumine's default topic settings (TopicsConfig) and of BERTopic's
default pipeline (MiniLM + UMAP(15, 5, cosine) + HDBSCAN(10), CountVectorizer(stop_words="english",
min_df=2), as in ../shared/notes/measurements.md); NPMI (gensim's c_npmi, window 10, top 10), diversity
(top 25), topics and outlier share of both. With ``--minilm-dir`` the baseline's MiniLM vectors come
from benchmarks/device_embed_minilm.py (a GPU) and its CPU embedding time is EXTRAPOLATED from the CPU
sample's docs/s; the JSON says so (``baseline.embed_seconds_extrapolated``).

``ours`` is scored on the lemmas with edumine's topic words, ``baseline`` on BERTopic's own tokens with its
own topic words: different references, so those two NPMI figures are not comparable. ``same_reference``
puts both clusterings through one words-from-clusters step and scores them on one reference, each way:
``lemma_reference`` (edumine's representation, TopicsConfig settings, over the usable docs' lemmas) and
``bertopic_reference`` (BERTopic's default representation over its tokens of all docs). Our topic words come
from the topic cores (``kmeans_trim``) while more docs are assigned (``outliers: nearest``), so the words
are scored from the core labels, the outlier share from the final assignment, and
``ours_words_from_all_assigned_docs`` gives the stricter reading: words recomputed from every assigned doc.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 50 ms)."""

    def __enter__(self) -> PeakRSS:
        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_gb = round(max(self.peak, self._process.memory_info().rss) / 2**30, 2)


CACHE_FORMAT = 2  # bump when the cached fields change: an older cache is rebuilt
CACHE_FIELDS = ["uid", "id", "kind", "parent_uid", "thread_uid", "author", "created_at", "title", "body", "link_url",
                "score", "is_deleted", "removal", "community"]


def base_records(cache: Path, *, deleted: bool = False) -> list[dict[str, Any]]:
    """Real posts and comments of the four shared corpora (sorted by uid), collected into a scratch lake once.

    Cached in ``cache``: ``real.jsonl.gz`` (the records with text), ``real-deleted.jsonl.gz`` (deleted or
    removed ones, text gone: the parents of some real replies) and ``real.format.json`` (``CACHE_FORMAT`` and
    the fields); a cache of another format is rebuilt. ``deleted=True`` adds the deleted records, so that a
    reply forest keeps every node the lake has. Authors are the lake's pseudonyms (benchmark key)."""
    target, gone, stamp = cache / "real.jsonl.gz", cache / "real-deleted.jsonl.gz", cache / "real.format.json"
    wanted = {"format": CACHE_FORMAT, "fields": CACHE_FIELDS}
    current = json.loads(stamp.read_text()) if stamp.exists() else None
    if current != wanted or not target.exists() or not gone.exists():
        import tempfile

        sys.path.insert(0, str(ROOT / "tests"))
        os.environ.setdefault("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key")
        from conftest import make_config

        from edumine.lake import Lake
        from edumine.pipelines.runner import run_collect

        lake = Path(tempfile.mkdtemp()) / "lake"
        run_collect(make_config(lake))
        rows = sorted(Lake(lake).read_posts(columns=CACHE_FIELDS).to_pylist(), key=lambda r: r["uid"])
        cache.mkdir(parents=True, exist_ok=True)
        for path, keep in ((target, False), (gone, True)):
            with gzip.open(path, "wt") as handle:
                for row in rows:
                    if bool(row["is_deleted"]) == keep:
                        handle.write(json.dumps({**row, "created_at": row["created_at"].isoformat()}) + "\n")
        stamp.write_text(json.dumps(wanted) + "\n")
    records = []
    for path in (target, gone) if deleted else (target,):
        with gzip.open(path, "rt") as handle:
            records += [json.loads(line) for line in handle]
    return sorted(records, key=lambda r: r["uid"]) if deleted else records


def quality(top_words: list[list[str]], tokens: list[list[str]], topics: np.ndarray) -> dict[str, Any]:
    from edumine.models.topics.evaluation import npmi_coherence, topic_diversity

    return {"npmi": round(npmi_coherence(top_words, tokens, top_n=10, window_size=10), 4),
            "diversity": round(topic_diversity(top_words, top_n=25), 4), "n_topics": len(top_words),
            "outlier_share": round(float(np.mean(np.asarray(topics) == -1)), 4)}


class _GivenClusters:
    """A "clusterer" that returns labels computed elsewhere: puts another model's clusters through a
    representation, so two clusterings can be scored with the same words-from-clusters step and reference."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = np.asarray(labels)

    def fit(self, X: Any, y: Any = None) -> _GivenClusters:
        self.labels_ = self.labels
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.labels[: len(X)]


def ours_representation(params: dict[str, Any], labels: np.ndarray, lemmas: list[str], vectors: np.ndarray,
                        reference: list[list[str]]) -> dict[str, Any]:
    """Given clusters through edumine's representation (binary lemma counts, c-TF-IDF with the TopicsConfig
    settings), scored on the lemma reference."""
    from edumine.models.topics.model import TopicModel

    class Given(TopicModel):
        def _clusterer(self, n_docs: int) -> Any:
            return _GivenClusters(labels)

    model = Given(**{**params, "outliers": "none"}).fit(lemmas, vectors)
    ids = [t for t in model.topic_ids() if t != -1]
    return quality([[w for w, _ in model.top_terms(t, 25)] for t in ids], reference, np.asarray(labels))


def baseline_representation(labels: np.ndarray, texts: list[str], vectors: np.ndarray,
                            reference: list[list[str]]) -> dict[str, Any]:
    """Given clusters through BERTopic's default representation (CountVectorizer(stop_words="english",
    min_df=2) over the clean text, default c-TF-IDF), scored on BERTopic's own token reference."""
    from bertopic import BERTopic
    from bertopic.dimensionality import BaseDimensionalityReduction
    from sklearn.feature_extraction.text import CountVectorizer

    bt = BERTopic(umap_model=BaseDimensionalityReduction(), hdbscan_model=_GivenClusters(labels),
                  vectorizer_model=CountVectorizer(stop_words="english", min_df=2))
    bt._save_representative_docs = lambda documents: None
    topics, _ = bt.fit_transform(texts, embeddings=vectors)
    ids = [t for t in sorted(set(topics)) if t != -1]
    return quality([[w for w, _ in bt.get_topic(t)][:25] for t in ids], reference, np.asarray(topics))


def minilm_vectors(directory: Path, n: int) -> np.ndarray:
    parts = sorted(directory.glob("minilm-*.npz"), key=lambda p: int(p.stem.split("-")[1]))
    quantised, scales = [], []
    for part in parts:
        with np.load(part) as data:
            quantised.append(data["q"])
            scales.append(data["scale"])
    vectors = np.concatenate(quantised)[:n].astype(np.float32) * np.concatenate(scales)[:n, None]
    if len(vectors) < n:
        raise SystemExit(f"{directory} holds {len(vectors)} MiniLM vectors, fewer than --n {n}")
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--minilm-dir", type=Path, help="GPU-made MiniLM vectors (device_embed_minilm.py)")
    parser.add_argument("--minilm-sample", type=int, default=300)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()

    from scaled_corpus import scaled_records

    from edumine.models.text.clean import clean_text
    from edumine.models.embeddings.backends import make_embedder
    from edumine.models.text.preprocess import Preprocessor
    from edumine.models.topics.model import TopicModel
    from edumine.pipelines.stages.topics import TopicsConfig

    result: dict[str, Any] = {"n": args.n, "load_before": os.getloadavg()}
    records = list(scaled_records(base_records(ROOT / "data" / "cache" / "bench"), args.n))

    started = time.perf_counter()
    docs = list(Preprocessor().process(records))
    seconds = time.perf_counter() - started
    result["preprocess"] = {"docs_per_s": round(len(docs) / seconds, 1), "seconds": round(seconds, 1)}
    usable = [i for i, d in enumerate(docs) if d.usable]
    lemmas = [docs[i].lemmas for i in usable]
    texts = [docs[i].text for i in usable]
    all_texts = [clean_text(r.get("title"), r.get("body")) for r in records]
    result["usable_docs"] = len(usable)

    config = TopicsConfig()
    embed: dict[str, Any] = {}
    started = time.perf_counter()
    tfidf = make_embedder(config.embeddings.backend, **config.embeddings.params).fit(lemmas)
    ours_vectors = tfidf.encode(lemmas)
    seconds = time.perf_counter() - started
    embed["embeddings.tfidf_svd.v1"] = {"params": tfidf.params(), "docs_per_s": round(len(lemmas) / seconds, 1),
                                        "seconds": round(seconds, 1)}
    static = make_embedder("embeddings.static.v1")
    if (static.path / "model.safetensors").exists():
        started = time.perf_counter()
        static.encode(texts)
        seconds = time.perf_counter() - started
        embed["embeddings.static.v1"] = {"docs_per_s": round(len(texts) / seconds, 1), "seconds": round(seconds, 1)}
    sample = texts[: args.minilm_sample]
    for name, params in (("embeddings.minilm.v1 (bf16)", {"bf16": True}), ("minilm fp32", {"bf16": False})):
        embedder = make_embedder("embeddings.minilm.v1", **params)
        embedder.encode(sample[:8])  # load the model outside the timing
        started = time.perf_counter()
        embedder.encode(sample)
        seconds = time.perf_counter() - started
        embed[name] = {"docs_per_s": round(len(sample) / seconds, 1), "sample": len(sample)}
    result["embeddings"] = embed

    with PeakRSS() as rss:
        started = time.perf_counter()
        model = TopicModel(**config.model_params()).fit(lemmas, ours_vectors)
        fit = time.perf_counter() - started
    ids = [t for t in model.topic_ids() if t != -1]
    top_words = [[w for w, _ in model.top_terms(t, 25)] for t in ids]
    analyzer = model.model_.vectorizer_model.build_analyzer()
    lemma_reference = [analyzer(x) for x in lemmas]
    n_all = len(records)
    ours = {"config": config.model_params(), "fit_seconds": round(fit, 1), "peak_rss_gb": rss.peak_gb,
            "reference": "lemmas of the usable docs (edumine's representation)",
            **quality(top_words, lemma_reference, model.topics_),
            # Counting the docs preprocessing set aside (link-only, too short, ...) as outliers too, as the
            # baseline, which models every doc, would count them.
            "outlier_share_all_docs": round((int(np.sum(model.topics_ == -1)) + n_all - len(usable)) / n_all, 4),
            "core_share": round(float(np.mean(model.core_)), 4),
            "labels": [model.label(t) for t in ids[:20]]}
    # The topic words come from the cores; with outliers: nearest, more docs are assigned than the cores
    # hold. The stricter reading: words recomputed from every assigned doc, same representation otherwise.
    core_labels = np.where(model.core_, model.topics_, -1)
    ours["words_from_all_assigned_docs"] = ours_representation(config.model_params(), model.topics_, lemmas,
                                                               ours_vectors, lemma_reference)
    ours["total_seconds"] = round(result["preprocess"]["seconds"] + embed["embeddings.tfidf_svd.v1"]["seconds"]
                                  + fit, 1)
    result["ours"] = ours

    if not args.skip_baseline:
        from bertopic import BERTopic
        from hdbscan import HDBSCAN
        from sklearn.feature_extraction.text import CountVectorizer
        from umap import UMAP

        fp32 = embed["minilm fp32"]["docs_per_s"]
        baseline: dict[str, Any] = {"embed_docs_per_s_cpu": fp32}
        if args.minilm_dir:
            vectors = minilm_vectors(args.minilm_dir, args.n)
            baseline["embed_seconds_extrapolated"] = round(args.n / fp32, 1)
        else:
            started = time.perf_counter()
            vectors = make_embedder("embeddings.minilm.v1", bf16=False).encode(all_texts)
            baseline["embed_seconds"] = round(time.perf_counter() - started, 1)
        with PeakRSS() as rss:
            started = time.perf_counter()
            bt = BERTopic(umap_model=UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
                                          random_state=0),
                          hdbscan_model=HDBSCAN(min_cluster_size=10, metric="euclidean",
                                                cluster_selection_method="eom", prediction_data=True),
                          vectorizer_model=CountVectorizer(stop_words="english", min_df=2))
            topics, _ = bt.fit_transform(all_texts, embeddings=vectors)
            fit = time.perf_counter() - started
        analyzer = bt.vectorizer_model.build_analyzer()
        # BERTopic strips everything but [A-Za-z0-9 ] before counting: evaluate on the same tokens.
        tokens = [analyzer(re.sub(r"[^A-Za-z0-9 ]+", "", t.replace("\n", " "))) for t in all_texts]
        bt_ids = [t for t in sorted(set(topics)) if t != -1]
        words = [[w for w, _ in bt.get_topic(t)][:25] for t in bt_ids]
        baseline.update({"fit_seconds": round(fit, 1), "peak_rss_gb": rss.peak_gb,
                         "reference": "BERTopic's tokens of all docs (its own representation)",
                         **quality(words, tokens, np.asarray(topics)),
                         "labels": [", ".join(w[:4]) for w in words[:20]]})
        # The two numbers above use different words-from-clusters steps and different reference corpora, so
        # they are not comparable. Score both clusterings each way, same step and same reference:
        # (a) edumine's representation over the lemma reference (the usable docs);
        # (b) BERTopic's default representation over BERTopic's token reference (all docs; the unusable
        #     docs, which edumine does not cluster, count as outliers of ours).
        bt_usable = np.asarray(topics)[usable]
        ours_all = np.full(len(all_texts), -1, dtype=np.int64)
        ours_all[usable] = core_labels  # words from the cores, as the model makes them
        ours_outliers = {"outlier_share": ours["outlier_share_all_docs"], "core_share": ours["core_share"]}
        result["same_reference"] = {
            "note": "ours: topic words from the cores (as the model makes them), outlier share of the final "
                    "assignment; lemma_reference.ours_words_from_all_assigned_docs: words from every assigned doc",
            "lemma_reference": {
                "ours": {**ours_representation(config.model_params(), core_labels, lemmas, ours_vectors,
                                               lemma_reference), "outlier_share": ours["outlier_share"],
                         "core_share": ours["core_share"]},
                "ours_words_from_all_assigned_docs": ours["words_from_all_assigned_docs"],
                "baseline": ours_representation(config.model_params(), bt_usable, lemmas, ours_vectors,
                                                lemma_reference)},
            "bertopic_reference": {
                "ours": {**baseline_representation(ours_all, all_texts, vectors, tokens), **ours_outliers},
                "baseline": {k: baseline[k] for k in ("npmi", "diversity", "n_topics", "outlier_share")}}}
        embed_seconds = baseline.get("embed_seconds", baseline.get("embed_seconds_extrapolated"))
        baseline["total_seconds"] = round(embed_seconds + fit, 1)
        result["baseline"] = baseline
        result["speedup"] = round(baseline["total_seconds"] / ours["total_seconds"], 1)
    result["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"topics-{args.n}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps({k: v for k, v in result.items()}, indent=1)[:6000] + "\n")


if __name__ == "__main__":
    main()
