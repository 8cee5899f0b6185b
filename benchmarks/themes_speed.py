"""Theme labelling speed, whole process: ``edumine themes predict`` over N real posts it has never seen.

Posts come from ``../shared/corpora/reddit-teaching-2023`` and ``reddit-top-posts-2009-13`` (not in the
labels). Each classifier is trained (or loaded) first with the shared labels, outside the timing; then a fresh
process labels N posts with an empty text cache: docs/s = N / wall-clock of that process (start-up, reading,
cleaning, tokenising, encoding, scoring, writing). ``--encoders`` also times the bare encoders in-process and
compares their vectors with the float32 PyTorch MiniLM (cosine).

    nice .venv/bin/python benchmarks/themes_speed.py [--n 3000] [--classifier NAME JSON_PARAMS ...] [--encoders]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEFAULT_RUNS = [("themes.tfidf_minilm_logreg.v1", "{}"), ("themes.tfidf_logreg.v1", "{}")]


def sample_posts(n: int) -> pd.DataFrame:
    frames = []
    for path in sorted((SHARED / "corpora" / "reddit-teaching-2023").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(pd.DataFrame({"title": frame["title"], "body": frame["self_text"]}))
    for path in sorted((SHARED / "corpora" / "reddit-top-posts-2009-13").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(pd.DataFrame({"title": frame["title"], "body": frame["selftext"]}))
    posts = pd.concat(frames, ignore_index=True).drop_duplicates()
    posts = posts[(posts["title"] + posts["body"]).str.split().str.len() >= 5]
    posts = posts.sample(n=min(n, len(posts)), random_state=0).reset_index(drop=True)
    posts.insert(0, "id", [f"p{i}" for i in range(len(posts))])
    return posts


def edumine(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edumine.cli", *args], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--classifier", nargs=2, action="append", metavar=("NAME", "PARAMS_JSON"))
    parser.add_argument("--encoders", action="store_true")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "data" / "models" / "themes")
    parser.add_argument("--label-cache", type=Path, default=ROOT / "data" / "cache" / "embeddings")
    args = parser.parse_args()
    load = open("/proc/loadavg").read().split()[0]
    results: dict = {"n": args.n, "load_before": load}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        posts = sample_posts(args.n)
        posts.to_parquet(work / "posts.parquet")
        for name, params in args.classifier or DEFAULT_RUNS:
            base = {"codebook": str(SHARED / "codebook" / "sdl_themes.yaml"),
                    "labels": [str(SHARED / "labels" / "sdl_train.jsonl")], "classifier": name,
                    "params": json.loads(params), "model_dir": str(args.model_dir)}
            train_cfg = work / "train.json"
            train_cfg.write_text(json.dumps({"lake": str(work / "lake"), "themes": {**base, "cache_dir": str(args.label_cache)}}))
            train_seconds = edumine("themes", "train", "--config", str(train_cfg), cwd=ROOT)
            # labelling: a cache folder that holds the labels' vectors only (copied), none of these posts'
            cache = work / f"cache-{len(results)}"
            subprocess.run(["cp", "-r", str(args.label_cache), str(cache)], check=True)
            run_cfg = work / "run.json"
            run_cfg.write_text(json.dumps({"lake": str(work / "lake"), "themes": {**base, "cache_dir": str(cache)}}))
            seconds = edumine("themes", "predict", str(work / "posts.parquet"), "--out", str(work / "out.jsonl"),
                              "--config", str(run_cfg), cwd=ROOT)
            key = f"{name} {params}"
            results[key] = {"docs_per_s": round(len(posts) / seconds, 1), "seconds": round(seconds, 1),
                            "load_after": open("/proc/loadavg").read().split()[0],
                            "train_or_load_seconds": round(train_seconds, 1)}
            print(key, results[key], flush=True)
        if args.encoders:
            results["encoders"] = encoders(posts)
    out = ROOT / "benchmarks" / "out" / "themes_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


def encoders(posts: pd.DataFrame) -> dict:
    from edumine.models.clean import clean_text
    from edumine.models.embeddings import make_embedder

    texts = [clean_text(t, b) for t, b in zip(posts["title"], posts["body"])][:500]
    reference = make_embedder("embeddings.minilm.v1", bf16=False).encode(texts)
    out = {}
    for name, params in [("embeddings.minilm.v1", {"bf16": True}),
                         ("embeddings.minilm_onnx.v1", {"max_seq_length": 256}),
                         ("embeddings.minilm_onnx.v1", {"max_seq_length": 128})]:
        embedder = make_embedder(name, **params)
        embedder.encode(texts[:4])
        started = time.perf_counter()
        vectors = embedder.encode(texts)
        seconds = time.perf_counter() - started
        a = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        b = reference / np.linalg.norm(reference, axis=1, keepdims=True)
        out[f"{name} {params}"] = {"docs_per_s": round(len(texts) / seconds, 1),
                                    "cosine_to_fp32_mean": round(float((a * b).sum(axis=1).mean()), 5),
                                    "load": open("/proc/loadavg").read().split()[0]}
        print(name, params, out[f"{name} {params}"], flush=True)
    return out


if __name__ == "__main__":
    main()
