"""Probe: the static MiniLM with a word vocabulary (model2vec's ``vocabulary`` option), then TF-IDF + it + LR on
the themes held-out split.

Words that MiniLM splits into two or more pieces and that occur at least ``--min-count`` times in the lake's
docs (``--lake``) get a vector of their own: one forward pass of ``[CLS] pieces [SEP]``, mean-pooled, as
model2vec does for a custom vocabulary; they are added to MiniLM's tokenizer as whole-word tokens (matched
before WordPiece), PCA and SIF as for the pieces (a word appended to the vocabulary gets a SIF weight of ~1).
Benchmark only; writes ``benchmarks/out/themes_static_vocab.json``.

    nice .venv/bin/python benchmarks/themes_static_vocab.py --lake ../main/data/lake [--min-count 5 10]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def word_vectors(model_path: Path, words: list[str]) -> np.ndarray:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    encoded = [tokenizer.encode(w).ids for w in words]  # [CLS] pieces [SEP]
    torch.set_num_threads(1)
    bert = AutoModel.from_pretrained(str(model_path)).eval()
    out = np.zeros((len(words), bert.config.hidden_size), np.float32)
    order = np.argsort([len(e) for e in encoded], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), 256):
            index = order[start:start + 256]
            width = max(len(encoded[i]) for i in index)
            ids = torch.zeros((len(index), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(index):
                ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, :len(encoded[i])] = 1
            hidden = bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out[index] = pooled.numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--min-count", type=int, nargs="*", default=[5])
    args = parser.parse_args()
    import pyarrow.dataset as ds
    from tokenizers import AddedToken, Tokenizer

    from edumine.models.embeddings.static import minilm_path, static_vectors, token_vectors
    from edumine.models.themes.codebook import load_codebook
    from edumine.models.themes.data import label_matrix, label_texts, load_labels, train_test_indices
    from edumine.models.themes.evaluation import held_out
    from edumine.models.themes.static import TfidfStaticLogReg

    codebook = load_codebook(SHARED / "codebook" / "sdl_themes.yaml")
    records = load_labels([SHARED / "labels" / "sdl_train.jsonl"], codebook)
    texts, Y = label_texts(records), label_matrix(records, codebook.ids)
    train, test = train_test_indices(Y, 0.2, seed=0)
    corpus = ds.dataset(args.lake / "docs", format="parquet", partitioning="hive").to_table(columns=["text"]) \
        .column("text").to_pylist()
    source = minilm_path()
    base = Tokenizer.from_file(str(source / "tokenizer.json"))
    counts = Counter()
    normalizer, pre = base.normalizer, base.pre_tokenizer
    for text in corpus:
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text or "")):
            counts[word] += 1
    raw, pieces = token_vectors(source)
    results = {}
    for min_count in args.min_count:
        started = time.perf_counter()
        words = sorted(w for w, c in counts.items() if c >= min_count and re.fullmatch(r"[a-z][a-z'\-]+", w)
                       and len(base.encode(w, add_special_tokens=False).ids) >= 2)
        vectors = np.vstack([raw, word_vectors(source, words)])
        table = static_vectors(vectors, pieces + words, 256, 1e-4)
        tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.add_tokens([AddedToken(w, single_word=True, normalized=True) for w in words])
        build_seconds = time.perf_counter() - started

        class WithWords(TfidfStaticLogReg):
            def _vectors(self, batch):  # noqa: ANN001,ANN202
                ids = [e.ids[:512] for e in tokenizer.encode_batch(list(batch), add_special_tokens=False)]
                out = np.stack([table[i].mean(axis=0) if i else np.zeros(table.shape[1], np.float32) for i in ids])
                return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

        result = held_out(lambda: WithWords(codebook=codebook, seed=0), texts, Y, codebook.ids, train, test, seed=0,
                          calibration="platt")
        results[str(min_count)] = {"words": len(words), "held_out_macro_f1": result["macro_f1"],
                                   "held_out_micro_f1": result["micro_f1"], "build_seconds": round(build_seconds, 1),
                                   "per_theme": {t: m["f1"] for t, m in result["per_theme"].items()}}
        print(min_count, results[str(min_count)], flush=True)
    out = ROOT / "benchmarks" / "out" / "themes_static_vocab.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
