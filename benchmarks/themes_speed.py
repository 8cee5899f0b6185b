"""Theme labelling speed, whole process: ``edumine themes predict`` over N real posts it has never seen.

Posts come from ``../shared/corpora/reddit-teaching-2023`` and ``reddit-top-posts-2009-13`` (not in the
labels). Each classifier is trained (or loaded) first with the shared labels, outside the timing; then a fresh
process labels N posts with an empty text cache: docs/s = N / wall-clock of that process (start-up, reading,
cleaning, tokenising, encoding, scoring, writing). ``--encoders`` also times the bare encoders in-process and
compares their vectors with the float32 PyTorch MiniLM (cosine).

The predict process runs under ``/usr/bin/time -v`` when it exists (its peak memory is reported), and each
classifier is also timed **in process**: the trained model loaded, then cleaned texts scored and decided as the
theme stage does (``ThemeModel.predict_proba`` + ``decide``, first call, no vectors cached): docs/s of the stage's
labelling without process start-up. Static models (``embeddings.static_minilm.v1``) are built once into
``--static-dir`` before any timing (``static_build_seconds``).

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
SOURCES = [{"kind": "tabular.v1", "name": "unused", "paths": ["unused.csv"], "columns": {"body": "body", "created": "created"},
            "community": "unused"}]  # themes commands read no source
DEFAULT_RUNS = [("themes.tfidf_minilm_logreg.v1", "{}"), ("themes.tfidf_static_logreg.v1", "{}"),
                ("themes.tfidf_logreg.v1", "{}")]


def sample_posts(n: int, seed: int = 0) -> pd.DataFrame:
    frames = []
    for path in sorted((SHARED / "corpora" / "reddit-teaching-2023").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(pd.DataFrame({"title": frame["title"], "body": frame["self_text"]}))
    for path in sorted((SHARED / "corpora" / "reddit-top-posts-2009-13").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(pd.DataFrame({"title": frame["title"], "body": frame["selftext"]}))
    posts = pd.concat(frames, ignore_index=True).drop_duplicates()
    posts = posts[(posts["title"] + posts["body"]).str.split().str.len() >= 5]
    posts = posts.sample(n=min(n, len(posts)), random_state=seed).reset_index(drop=True)
    posts.insert(0, "id", [f"p{i}" for i in range(len(posts))])
    return posts


TIME = Path("/usr/bin/time")
LAST_PEAK_MB: list[float] = []


def edumine(*args: str, cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one edumine process. On a shared machine the CPU seconds say more:
    docs per CPU-second x 2 is what 2 idle cores would give if the work used both (ONNX Runtime does).
    Under ``/usr/bin/time -v`` its peak resident memory goes to ``LAST_PEAK_MB``."""
    import re
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    prefix = [str(TIME), "-v"] if TIME.exists() else []
    done = subprocess.run([*prefix, sys.executable, "-m", "edumine.cli", *args], cwd=cwd, check=True,
                          capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    LAST_PEAK_MB[:] = [round(int(peak.group(1)) / 1024, 1)] if peak else []
    return time.perf_counter() - started, cpu


def in_process(model_dir: Path, texts: list[str], folder: Path | None = None) -> dict:
    """The trained model (``folder``, else the latest) loaded in this process, then ``texts`` scored and decided
    (first call: nothing cached)."""
    import resource

    from edumine.models.themes.classifier import ThemeModel

    if folder is None:
        latest = json.loads((model_dir / "latest.json").read_text())
        folder = model_dir / Path(latest.get("folder") or latest.get("model") or latest.get("name")).name
    started = time.perf_counter()
    model = ThemeModel.load(folder)
    load_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as empty:
        model.use_cache_dir(empty)
        warm = time.perf_counter()
        model.predict_proba(texts[:8])  # lazy loads (ONNX session, static table) outside the timing
        if hasattr(model.estimator_, "slow_"):  # a cascade: its slow model's session too, whatever it defers
            model.estimator_.slow_.predict_proba(texts[:2])
        warm = time.perf_counter() - warm
        cpu0, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        model.decide(model.predict_proba(texts[8:]))
        seconds = time.perf_counter() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    extra = {}
    if hasattr(model.estimator_, "deferred"):  # a cascade: the share its slow model scored (outside the timing)
        extra = {"deferred_share": round(float(model.estimator_.deferred(texts[8:]).mean()), 4),
                 "band": round(model.estimator_.band_, 4)}
    return {**extra,"in_process_docs_per_s": round((len(texts) - 8) / seconds, 1),
            "in_process_docs_per_cpu_s": round((len(texts) - 8) / max(cpu, 1e-9), 1),
            "model_load_seconds": round(load_seconds, 2), "first_call_seconds": round(warm, 2)}


def theme_settings(name: str, params: str, args: argparse.Namespace) -> dict:
    return {"codebook": str(SHARED / "codebook" / "sdl_themes.yaml"),
            "labels": [str(SHARED / "labels" / "sdl_train.jsonl")], "classifier": name,
            "params": json.loads(params), "model_dir": str(args.model_dir), "eval_folds": 0}


def pretrain(runs: list, args: argparse.Namespace) -> None:
    """Train (or load) every model in this process first, so that cascades differing only in their band share
    their sub-models' fits; the ``themes train`` processes below then find them cached."""
    from edumine.models.themes.classifier import ThemesConfig, load_or_train

    for name, params in runs:
        started = time.perf_counter()
        settings = ThemesConfig(**theme_settings(name, params, args), cache_dir=args.label_cache).resolved(ROOT)
        _, folder, trained = load_or_train(settings)
        print(f"{name} {params}: {'trained' if trained else 'loaded'} in {time.perf_counter() - started:.0f}s "
              f"({folder.name})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--classifier", nargs=2, action="append", metavar=("NAME", "PARAMS_JSON"))
    parser.add_argument("--encoders", action="store_true")
    parser.add_argument("--in-process-only", action="store_true", help="time only the loaded models scoring in this "
                        "process (no `themes predict` processes)")
    parser.add_argument("--seed", type=int, default=0, help="which posts (a sample not labelled before)")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "data" / "models" / "themes")
    parser.add_argument("--label-cache", type=Path, default=ROOT / "data" / "cache" / "embeddings")
    parser.add_argument("--static-dir", type=Path, default=ROOT / "data" / "models" / "static")
    args = parser.parse_args()
    import os

    from edumine.models.text.clean import clean_text

    os.environ["EDUMINE_STATIC_DIR"] = str(args.static_dir)  # the predict processes inherit it
    load = open("/proc/loadavg").read().split()[0]
    results: dict = {"n": args.n, "load_before": load}
    started = time.perf_counter()
    from edumine.models.embeddings.static import StaticMiniLMEmbedder

    StaticMiniLMEmbedder(artefact_dir=args.static_dir).model()
    results["static_build_seconds"] = round(time.perf_counter() - started, 1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        posts = sample_posts(args.n, args.seed)
        posts.to_parquet(work / "posts.parquet")
        texts = [clean_text(t, b) for t, b in zip(posts["title"], posts["body"])]
        runs = args.classifier or DEFAULT_RUNS
        pretrain(runs, args)
        for name, params in runs:
            if args.in_process_only:
                settings = theme_settings(name, params, args)
                from edumine.models.themes.classifier import ThemesConfig, load_or_train

                _, folder, _ = load_or_train(ThemesConfig(**settings, cache_dir=args.label_cache).resolved(ROOT))
                results[f"{name} {params}"] = {**in_process(args.model_dir, texts, folder),
                                               "load_after": open("/proc/loadavg").read().split()[0]}
                print(f"{name} {params}", results[f"{name} {params}"], flush=True)
                continue
            base = theme_settings(name, params, args)
            train_cfg = work / "train.json"
            train_cfg.write_text(json.dumps({"lake": str(work / "lake"), "sources": SOURCES, "themes": {**base, "cache_dir": str(args.label_cache)}}))
            train_seconds, _ = edumine("themes", "train", "--config", str(train_cfg), cwd=ROOT)
            # labelling: a cache folder that holds the labels' vectors only (copied), none of these posts'
            cache = work / f"cache-{len(results)}"
            subprocess.run(["cp", "-r", str(args.label_cache), str(cache)], check=True)
            run_cfg = work / "run.json"
            run_cfg.write_text(json.dumps({"lake": str(work / "lake"), "sources": SOURCES, "themes": {**base, "cache_dir": str(cache)}}))
            seconds, cpu = edumine("themes", "predict", str(work / "posts.parquet"), "--out", str(work / "out.jsonl"),
                              "--config", str(run_cfg), cwd=ROOT)
            peak = LAST_PEAK_MB[0] if LAST_PEAK_MB else None
            # again with the vectors cached: what the stage costs when the topic stage already encoded the docs
            cached_seconds, cached_cpu = edumine("themes", "predict", str(work / "posts.parquet"), "--out",
                                                 str(work / "out2.jsonl"), "--config", str(run_cfg), cwd=ROOT)
            key = f"{name} {params}"
            results[key] = {"docs_per_s": round(len(posts) / seconds, 1), "seconds": round(seconds, 1),
                            "cpu_seconds": round(cpu, 1), "docs_per_cpu_s": round(len(posts) / cpu, 1),
                            "vectors_cached_docs_per_s": round(len(posts) / cached_seconds, 1),
                            "vectors_cached_docs_per_cpu_s": round(len(posts) / cached_cpu, 1),
                            "predict_peak_rss_mb": peak,
                            **in_process(args.model_dir, texts),
                            "load_after": open("/proc/loadavg").read().split()[0],
                            "train_or_load_seconds": round(train_seconds, 1)}
            print(key, results[key], flush=True)
        if args.encoders:
            results["encoders"] = encoders(posts)
    out = ROOT / "benchmarks" / "out" / "themes_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


def encoders(posts: pd.DataFrame) -> dict:
    from edumine.models.text.clean import clean_text
    from edumine.models.embeddings.backends import make_embedder

    texts = [clean_text(t, b) for t, b in zip(posts["title"], posts["body"])][:500]
    reference = make_embedder("embeddings.minilm.v1", bf16=False).encode(texts)
    out = {}
    import resource

    for name, params in [("embeddings.minilm.v1", {"bf16": True}),
                         ("embeddings.minilm_onnx.v1", {"max_seq_length": 256}),
                         ("embeddings.minilm_onnx.v1", {"max_seq_length": 128})]:
        embedder = make_embedder(name, **params)
        embedder.encode(texts[:4])
        started, cpu_started = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        vectors = embedder.encode(texts)
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime - cpu_started.ru_utime + usage.ru_stime - cpu_started.ru_stime
        a = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        b = reference / np.linalg.norm(reference, axis=1, keepdims=True)
        out[f"{name} {params}"] = {"docs_per_s": round(len(texts) / seconds, 1),
                                    "docs_per_cpu_s": round(len(texts) / cpu, 1),
                                    "cosine_to_fp32_mean": round(float((a * b).sum(axis=1).mean()), 5),
                                    "load": open("/proc/loadavg").read().split()[0]}
        print(name, params, out[f"{name} {params}"], flush=True)
    return out


if __name__ == "__main__":
    main()
