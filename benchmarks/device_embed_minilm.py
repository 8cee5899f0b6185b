"""Embed the scaled benchmark corpus with all-MiniLM-L6-v2 on a GPU machine (quality runs only).

BERTopic's default pipeline embeds with MiniLM; on this project's 2-core CPU that takes ~25-40 min per
100 k posts, so the 100 k quality comparison takes its vectors from a lent GPU, while the CPU time is
measured on a sample (benchmarks/topics_benchmark.py says which figures are extrapolated).
Vectors come back int8 per row (scale in float32; cosine to the float vectors > 0.9999).

    python benchmarks/device_embed_minilm.py DATA_DIR N OUT_DIR
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from models.clean import clean_text
    from scaled_corpus import scaled_records

    data, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(data / "real.jsonl.gz", "rt") as handle:
        base = [json.loads(line) for line in handle]
    texts = [clean_text(r.get("title"), r.get("body")) for r in scaled_records(base, n)]
    model = SentenceTransformer(str(data / "minilm"), device="cuda")
    model.max_seq_length = 256
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=256, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    seconds = time.perf_counter() - started
    scale = np.abs(vectors).max(axis=1, keepdims=True) / 127.0
    quantised = np.round(vectors / scale).astype(np.int8)
    restored = quantised.astype(np.float32) * scale
    cosine = (restored * vectors).sum(1) / np.linalg.norm(restored, axis=1) / np.linalg.norm(vectors, axis=1)
    rows = 33_000
    for part, start in enumerate(range(0, n, rows)):
        np.savez(out / f"minilm-{part}.npz", q=quantised[start:start + rows], scale=scale[start:start + rows, 0])
    info = {"n": n, "gpu_seconds": round(seconds, 1), "min_cosine_int8": float(cosine.min()),
            "torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
    (out / "info.json").write_text(json.dumps(info))
    print(info)


if __name__ == "__main__":
    main()
