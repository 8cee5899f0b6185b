"""The fair topic benchmark: every model's topic words from the same lemmas, one scorer, several seeds.

    .venv/bin/python benchmarks/topics_fair.py --corpus real10k --models edumine bertopic --seeds 0 1 2
    .venv/bin/python benchmarks/topics_fair.py --corpus top0913 --models edumine bertopic   # AMI vs subreddit

Each (model, seed) runs in a process of its own (peak RSS is that process's), on the usable docs of a
corpus from benchmarks/fair_corpus.py, with vectors cached there (made once, their cost added to every
run's time). Every model reads the same lemma strings for its topic words, and every model is scored the
same way (``score``):

- NPMI: gensim's c_npmi (sliding window 10, top 10 words; edumine.models.topics.evaluation, checked against gensim
  in tests/test_coherence.py) over the corpus's lemmas;
- diversity: unique share of the top 25 words of all topics;
- outliers: share of docs without a topic (-1);
- catch-alls: share of the 10 largest topics whose label coverage (the share of the topic's docs that use
  one of its 4 first words) is under 0.2;
- AMI of the topics (outliers as one more cluster) against the community of origin;
- seconds: vectors (the cached encoding's measured cost, or the issue's MiniLM reference rate with
  ``--minilm-docs-per-s``) plus the fit, and the fit alone; peak RSS of the process.

Models: ``edumine[:option=value,...]`` (TopicModel with TopicsConfig's defaults and the given changes;
``vectors=tfidf|minilm|int8|static|concat|concat_int8|concat_static``; ``int8`` is the theme stage's own
encoder, ``static`` the theme option's static MiniLM), ``bertopic`` (BERTopic's default: MiniLM, UMAP(15, 5, cosine),
HDBSCAN(10); CountVectorizer(min_df=2) over the lemmas), ``keynmf`` and ``gmm`` (turftopic 0.28 defaults
with the MiniLM encoder and the same vectorizer, 100 topics as in issue 17; installed with ``pip install
--target .turf --no-deps turftopic==0.28.0 igraph==0.11.9 texttable==1.7.2 pillow==13.0.0``, see
docs/topics.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "benchmarks"))
CATCHALL_COVERAGE = 0.2


def lemma_vectorizer(min_df: int = 2) -> Any:
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(token_pattern=r"\S+", lowercase=False, min_df=min_df)


def score(words: list[list[str]], topics: np.ndarray, lemmas: list[str],
          communities: list[str]) -> dict[str, Any]:
    """One scorer for every model. ``words``: top words per topic id 0..n-1 (25 or fewer), ``topics``: a
    topic id per doc, -1 for none."""
    from sklearn.metrics import adjusted_mutual_info_score

    from edumine.models.topics.evaluation import label_coverage, npmi_coherence, topic_diversity

    topics = np.asarray(topics)
    reference = [text.split() for text in lemmas]
    counter = lemma_vectorizer(min_df=1).fit(lemmas)
    counts = counter.transform(lemmas)
    sizes = {t: int(np.sum(topics == t)) for t in range(len(words))}
    shown = sorted(sizes, key=lambda t: -sizes[t])[:15]
    largest = shown[:10]
    coverage = label_coverage(counts, counter.vocabulary_, {t: words[t][:4] for t in shown}, topics,
                              np.ones(len(topics), dtype=bool))
    return {"npmi": round(npmi_coherence(words, reference, top_n=10, window_size=10), 4),
            "diversity": round(topic_diversity(words, top_n=25), 4), "n_topics": len(words),
            "outlier_share": round(float(np.mean(topics == -1)), 4),
            "catchall_top10": round(float(np.mean([(coverage[t] or 0) < CATCHALL_COVERAGE for t in largest])), 2),
            "ami_community": round(float(adjusted_mutual_info_score(communities, topics)), 4),
            "largest": [{"size": sizes[t], "coverage": coverage[t], "words": words[t][:8]} for t in shown]}


# -- models ------------------------------------------------------------------------------------------------
def parse_options(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return name, options


def load_vectors(corpus: str, which: str) -> tuple[np.ndarray, float]:
    from fair_corpus import vectors

    concats = {"concat": ("tfidf", "minilm"), "concat_static": ("tfidf", "static"), "concat_int8": ("tfidf", "int8")}
    if which not in concats:
        return vectors(corpus, which)
    parts = [vectors(corpus, name) for name in concats[which]]
    unit = [p[0] / np.maximum(np.linalg.norm(p[0], axis=1, keepdims=True), 1e-12) for p in parts]
    return np.hstack(unit).astype(np.float32), sum(p[1] for p in parts)


def run_edumine(data: dict[str, Any], corpus: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    from fair_corpus import signals

    from edumine.models.topics.model import TopicModel
    from edumine.pipelines.stages.topics import TopicsConfig

    which = options.pop("vectors", "tfidf")
    matrix, embed_seconds = load_vectors(corpus, which)
    params = {**TopicsConfig().model_params(), **options, "random_state": seed}
    started, cpu = time.perf_counter(), time.process_time()
    model = TopicModel(**params).fit(data["lemmas"], matrix, **signals(data))
    fit, cpu = time.perf_counter() - started, time.process_time() - cpu
    ids = [t for t in model.topic_ids() if t != -1]
    words = [[w for w, _ in model.top_terms(t, 25)] for t in ids]
    index = {t: i for i, t in enumerate(ids)}
    topics = np.array([index.get(int(t), -1) for t in model.topics_])
    extra = {"catchall_docs_share": round(float(np.mean(getattr(model, "catchall_", [0]))), 4),
             "diluted_docs_share": round(float(np.mean(getattr(model, "diluted_", [0]))), 4),
             "link_dump_docs_share": round(float(np.mean(getattr(model, "link_dumps_", [0]))), 4),
             "core_share": round(float(np.mean(model.core_)), 4), "k": int(model.n_clusters_),
             "k_scores": getattr(model, "k_scores_", None)}
    return {"words": words, "topics": topics, "embed_seconds": embed_seconds, "fit_seconds": fit,
            "fit_cpu_seconds": cpu,
            "params": {k: v for k, v in params.items()}, "vectors": which, **extra}


def run_bertopic(data: dict[str, Any], corpus: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    from bertopic import BERTopic
    from hdbscan import HDBSCAN
    from umap import UMAP

    matrix, embed_seconds = load_vectors(corpus, "minilm")
    started, cpu = time.perf_counter(), time.process_time()
    model = BERTopic(umap_model=UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
                                     random_state=seed),
                     hdbscan_model=HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom",
                                           prediction_data=True),
                     vectorizer_model=lemma_vectorizer())
    topics, _ = model.fit_transform(data["lemmas"], embeddings=matrix)
    fit, cpu = time.perf_counter() - started, time.process_time() - cpu
    ids = [t for t in sorted(set(topics)) if t != -1]
    index = {t: i for i, t in enumerate(ids)}
    return {"words": [[w for w, _ in model.get_topic(t)][:25] for t in ids],
            "topics": np.array([index.get(int(t), -1) for t in topics]), "embed_seconds": embed_seconds,
            "fit_seconds": fit, "fit_cpu_seconds": cpu}


def run_turftopic(kind: str, data: dict[str, Any], corpus: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / ".turf"))
    from sentence_transformers import SentenceTransformer

    from edumine.models.embeddings.backends import make_embedder

    matrix, embed_seconds = load_vectors(corpus, "minilm")
    encoder: SentenceTransformer = make_embedder("embeddings.minilm.v1", bf16=False, threads=1).model()
    n_topics = int(options.get("n", 100))
    started, cpu = time.perf_counter(), time.process_time()
    if kind == "keynmf":
        from turftopic import KeyNMF

        model = KeyNMF(n_topics, encoder=encoder, vectorizer=lemma_vectorizer(), random_state=seed)
    else:
        from turftopic import GMM

        model = GMM(n_topics, encoder=encoder, vectorizer=lemma_vectorizer(), random_state=seed)
    doc_topic = model.fit_transform(data["lemmas"], embeddings=matrix)
    fit, cpu = time.perf_counter() - started, time.process_time() - cpu
    vocab = model.get_vocab()
    words = [[str(vocab[i]) for i in np.argsort(-row)[:25]] for row in model.components_]
    topics = np.asarray(doc_topic).argmax(axis=1)
    return {"words": words, "topics": topics, "embed_seconds": embed_seconds, "fit_seconds": fit,
            "fit_cpu_seconds": cpu}


def run_one(spec: str, corpus: str, seed: int) -> dict[str, Any]:
    from fair_corpus import corpus as load_corpus
    from topics_benchmark import PeakRSS

    data = load_corpus(corpus)
    name, options = parse_options(spec)
    import bertopic  # noqa: F401  (imports outside the timing: ~9 s of CPU, a minute of wall time under load)
    import umap  # noqa: F401

    with PeakRSS() as rss:
        if name == "edumine":
            result = run_edumine(data, corpus, seed, dict(options))
        elif name == "bertopic":
            result = run_bertopic(data, corpus, seed, options)
        elif name in ("keynmf", "gmm"):
            result = run_turftopic(name, data, corpus, seed, options)
        else:
            raise SystemExit(f"unknown model {name!r}")
    words, topics = result.pop("words"), result.pop("topics")
    scores = score(words, topics, data["lemmas"], data["community"])
    return {"model": spec, "corpus": corpus, "seed": seed, "docs": len(topics), **scores,
            **{key: round(result.pop(key), 2) for key in ("fit_seconds", "fit_cpu_seconds", "embed_seconds")},
            "peak_rss_gb": rss.peak_gb, "load": os.getloadavg(), **result}


def summarise(rows: list[dict[str, Any]], minilm_rate: float | None) -> dict[str, Any]:
    """Mean ± sd over seeds per model."""
    from fair_corpus import corpus as load_corpus

    out: dict[str, Any] = {}
    for spec in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == spec]
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in mine]}
        for key in ("npmi", "diversity", "outlier_share", "n_topics", "catchall_top10", "ami_community",
                    "fit_seconds", "fit_cpu_seconds", "embed_seconds", "peak_rss_gb"):
            values = np.array([r[key] for r in mine], dtype=float)
            spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry[key] = [round(float(values.mean()), 4), round(spread, 4)]
        uses_minilm = "minilm" in spec or re.search(r"vectors=concat(,|$)", spec) or not spec.startswith("edumine")
        if minilm_rate and uses_minilm:
            docs = len(load_corpus(mine[0]["corpus"])["uid"])
            entry["embed_seconds_at_reference_rate"] = round(docs / minilm_rate, 1)
        out[spec] = entry
    return out


def table(paths: list[Path]) -> str:
    """A markdown table of the summaries in the given result files (mean ± sd over seeds)."""
    lines = ["| model | seeds | NPMI | diversity | outliers | topics | catch-alls in top 10 | AMI community "
             "| fit s (cpu s) | vectors s (at 53 docs/s) | peak RSS GB |", "|" + "---|" * 11]
    fmt = lambda v, d=3: f"{v[0]:.{d}f} ± {v[1]:.{d}f}"  # noqa: E731
    for path in paths:
        for spec, e in json.loads(path.read_text())["summary"].items():
            vectors = f"{e['embed_seconds'][0]:.0f}" + (f" ({e['embed_seconds_at_reference_rate']:.0f})"
                                                       if "embed_seconds_at_reference_rate" in e else "")
            lines.append(f"| {spec} | {len(e['seeds'])} | {fmt(e['npmi'])} | {fmt(e['diversity'], 2)} | "
                         f"{fmt(e['outlier_share'], 2)} | {e['n_topics'][0]:.0f} | {e['catchall_top10'][0]:.2f} | "
                         f"{fmt(e['ami_community'])} | {e['fit_seconds'][0]:.1f} ({e['fit_cpu_seconds'][0]:.1f}) | "
                         f"{vectors} | {e['peak_rss_gb'][0]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="real10k")
    parser.add_argument("--models", nargs="+", default=["edumine"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--one", help="internal: run one model spec in this process")
    parser.add_argument("--minilm-docs-per-s", type=float, default=53.0,
                        help="reference MiniLM CPU rate for the extrapolated time (issue 17: 53 docs/s)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--in-process", action="store_true",
                        help="run every model in this process (quick variant sweeps; peak RSS is then shared)")
    parser.add_argument("--table", nargs="+", type=Path, help="print a markdown table of these result files")
    args = parser.parse_args()
    if args.table:
        sys.stdout.write(table(args.table) + "\n")
        return
    if args.one:
        sys.stdout.write(json.dumps(run_one(args.one, args.corpus, args.seeds[0]), default=str) + "\n")
        return
    # One thread per BLAS/OpenMP pool in every model process: on a shared 2-core box, oversubscribed
    # spinning pools made a 3 s k-means fit take minutes; every model runs under the same rule.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    for spec in args.models:
        for seed in args.seeds:
            if args.in_process:
                rows.append(run_one(spec, args.corpus, seed))
                _report(rows[-1])
                _write(args, rows)
                continue
            done = subprocess.run([sys.executable, __file__, "--one", spec, "--corpus", args.corpus, "--seeds",
                                   str(seed)], capture_output=True, text=True, check=False, env=env)
            if done.returncode:
                sys.stderr.write(f"{spec} seed {seed} failed:\n{done.stderr[-3000:]}\n")
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            _report(rows[-1])
            _write(args, rows)  # after every run: a sweep stopped half-way keeps what it measured
    sys.stderr.write(f"wrote {_write(args, rows)}\n")


def _write(args: argparse.Namespace, rows: list[dict[str, Any]]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"fair-{args.corpus}{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps({"corpus": args.corpus, "summary": summarise(rows, args.minilm_docs_per_s),
                                "runs": rows}, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def _report(row: dict[str, Any]) -> None:
    sys.stderr.write(f"{row['model']} s{row['seed']}: npmi {row['npmi']} div {row['diversity']} "
                     f"out {row['outlier_share']} "
                     f"k {row['n_topics']} catch {row['catchall_top10']} ami {row['ami_community']} "
                     f"fit {row['fit_seconds']}s cpu {row['fit_cpu_seconds']}s rss {row['peak_rss_gb']} "
                     f"load {row['load'][0]:.1f}\n")


if __name__ == "__main__":
    main()
