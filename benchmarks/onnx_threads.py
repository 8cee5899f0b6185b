"""MiniLM int8 encoding, side by side on the same docs: ONNX Runtime's own intra-op threads (the encoder before
2026-12-01: one session, one text per call) against one-thread lanes (``embeddings.minilm_onnx.v1`` now: every CPU
runs whole texts through a shared one-thread session).

    .venv/bin/python benchmarks/onnx_threads.py --lake /path/to/lake --n 400 [--reps 2]

Reads ``n`` usable docs (seeded sample) of a lake's ``docs`` table, prints docs/s per variant and repetition, and
how far the old variant's vectors are from the lanes' (they differ in the last bits on long texts).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("EDUMINE_ONNX_DIR", f"{args.lake}/models/onnx")
    import onnxruntime as ort
    import pyarrow.dataset as ds

    from edumine.models.embeddings.onnx import MiniLMOnnxEmbedder, _mean_pooled, export_onnx

    table = ds.dataset(f"{args.lake}/docs", format="parquet").to_table(columns=["text", "usable"])
    texts = [t for t, u in zip(table["text"].to_pylist(), table["usable"].to_pylist()) if u and t]
    texts = [texts[i] for i in np.random.default_rng(0).choice(len(texts), args.n, replace=False)]
    lanes = MiniLMOnnxEmbedder(threads=1)
    ids = lanes.token_ids(texts)
    print(f"{args.n} docs, mean {np.mean([len(i) for i in ids]):.1f} word pieces; load {os.getloadavg()}")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 0, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    old = ort.InferenceSession(str(export_onnx(lanes._folder(), True)), options, providers=["CPUExecutionProvider"])
    _mean_pooled(old, [ids[0]])
    rates: dict[str, list[float]] = {}
    for rep in range(args.reps):
        started = time.perf_counter()
        before = np.stack([_mean_pooled(old, [row])[0] for row in ids])
        rates.setdefault("ONNX Runtime threads (before)", []).append(args.n / (time.perf_counter() - started))
        for count in (1, os.cpu_count() or 1):
            started = time.perf_counter()
            now = MiniLMOnnxEmbedder(threads=count).encode(texts)
            rates.setdefault(f"{count} one-thread lane(s) (now)", []).append(args.n / (time.perf_counter() - started))
            if rep == 0:
                diff = np.abs(now - before).max(axis=1)
                print(f"{count} lane(s) vs before: {np.mean(diff > 0):.0%} of vectors differ, max abs diff {diff.max():.1e}")
    for name, values in rates.items():
        print(f"{name}: {', '.join(f'{v:.1f}' for v in values)} docs/s")
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
