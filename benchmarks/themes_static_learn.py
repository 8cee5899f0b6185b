"""Probe: a static MiniLM table *learned* to reproduce MiniLM's sentence vectors (tokenlearn-style), then TF-IDF
+ that table + LR on the themes held-out split.

Targets: int8-ONNX MiniLM vectors of the lake's docs (``--lake``, its ``cache/embeddings``), leaving out every
r/teaching and r/teachingresources doc of 2017-18 (the labels' population) and every labelled text. The table
is the distilled static one (raw 384 dims, SIF-weighted) plus a ridge correction: mean-of-pieces is linear
in the table, so ``min ||A (T0 + D) - Z||^2 + alpha ||D||^2`` (A: each doc's piece frequencies) is one sparse
least-squares problem per dimension. Benchmark only; writes ``benchmarks/out/themes_static_learn.json``.

    nice .venv/bin/python benchmarks/themes_static_learn.py --lake ../main/data/lake [--alpha 1.0 ...]
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CACHE = ROOT / "data" / "cache" / "embeddings"


def targets(lake: Path, label_texts: set[str]) -> tuple[list[str], np.ndarray]:
    import pyarrow.dataset as ds

    docs = ds.dataset(lake / "docs", format="parquet", partitioning="hive").to_table(
        columns=["uid", "text", "community", "created_at", "usable"]).to_pandas()
    year = docs["created_at"].dt.year
    skip = docs["community"].isin(["teaching", "teachingresources"]) & year.between(2017, 2018)
    docs = docs[~skip & docs["usable"] & ~docs["text"].isin(label_texts)]
    vectors: dict[str, np.ndarray] = {}
    for file in sorted(glob.glob(str(lake / "cache" / "embeddings" / "embeddings.minilm_onnx.v1-*" / "chunk-*.npz"))):
        with np.load(file) as data:
            for uid, vector in zip(data["uids"].tolist(), data["vectors"]):
                vectors[uid] = vector
    docs = docs[docs["uid"].isin(vectors)]
    Z = np.stack([vectors[u] for u in docs["uid"]]).astype(np.float32)
    return docs["text"].tolist(), Z / np.linalg.norm(Z, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--alpha", type=float, nargs="*", default=[1.0])
    parser.add_argument("--static-dir", type=Path, default=ROOT / "data" / "models")
    args = parser.parse_args()
    from scipy import sparse
    from sklearn.linear_model import Ridge

    from edumine.models.embeddings.static import StaticMiniLMEmbedder
    from edumine.models.themes.codebook import load_codebook
    from edumine.models.themes.data import label_matrix, label_texts, load_labels, train_test_indices
    from edumine.models.themes.evaluation import held_out
    from edumine.models.themes.static import TfidfStaticLogReg

    codebook = load_codebook(SHARED / "codebook" / "sdl_themes.yaml")
    records = load_labels([SHARED / "labels" / "sdl_train.jsonl"], codebook)
    texts, Y = label_texts(records), label_matrix(records, codebook.ids)
    train, test = train_test_indices(Y, 0.2, seed=0)
    corpus, Z = targets(args.lake, set(texts))
    print(f"{len(corpus)} corpus docs with MiniLM vectors", flush=True)
    base = StaticMiniLMEmbedder(pca_dims=None, artefact_dir=args.static_dir).model()
    T0 = np.asarray(base.embedding, dtype=np.float32)
    pieces = base.tokenize(corpus)
    rows = np.concatenate([[i] * len(p) for i, p in enumerate(pieces)]).astype(np.int64)
    A = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(pieces))), shape=(len(corpus), len(T0)))
    A = sparse.diags(1.0 / np.maximum(np.asarray(A.sum(axis=1)).ravel(), 1)) @ A
    start = A @ T0
    scale = float((start * Z).sum() / (start * start).sum())  # the static table's scale against unit targets
    results = {}
    for alpha in args.alpha:
        started = time.perf_counter()
        ridge = Ridge(alpha=alpha, fit_intercept=False, solver="lsqr", tol=1e-4).fit(A, Z - scale * A @ T0)
        table = scale * T0 + ridge.coef_.T.astype(np.float32)
        fit_seconds = time.perf_counter() - started
        fitted = A @ table
        cos = float((fitted * Z).sum(axis=1).mean() / 1.0)

        class Learned(TfidfStaticLogReg):
            def _vectors(self, batch):  # noqa: ANN001,ANN202
                ids = base.tokenize(list(batch))
                out = np.stack([table[p].mean(axis=0) if p else np.zeros(table.shape[1], np.float32) for p in ids])
                return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

        result = held_out(lambda: Learned(codebook=codebook, seed=0), texts, Y, codebook.ids, train, test, seed=0,
                          calibration="platt")
        results[str(alpha)] = {"held_out_macro_f1": result["macro_f1"], "held_out_micro_f1": result["micro_f1"],
                               "fit_seconds": round(fit_seconds, 1), "train_cosine": round(cos, 3),
                               "per_theme": {t: m["f1"] for t, m in result["per_theme"].items()}}
        print(alpha, results[str(alpha)], flush=True)
    out = ROOT / "benchmarks" / "out" / "themes_static_learn.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"docs": len(corpus), "results": results}, indent=1))


if __name__ == "__main__":
    main()
