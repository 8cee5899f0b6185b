"""MiniLM fine-tuned on CPU (top layer + head on cached lower states) against the default, on the shared labels.

Same held-out split as ``benchmarks/themes_compare.py`` (fold 0 of five iterative-stratification folds by theme,
524 texts never used for training or tuning). Because one fine-tune costs minutes here, the decision layer is
measured two ways:

- ``split``: the training part (2,109 texts) is split once more (fold 0 of five, seed + 101): models are fitted
  on 4/5 of it and Platt calibration + thresholds come from their scores on the other 1/5; ONE fit per model.
  Every approach in a run, the default included, goes through the same protocol, so the rows compare.
- ``held-out``: the protocol of ``themes_compare.py`` (inner 5-fold out-of-fold scores, then a refit on the
  whole training part: six fits per model).

Also reported: threshold-free macro average precision on the 524 held-out texts. Fitted top layers are cached
under ``data/cache/finetune/`` by settings and rows (a rerun or a killed run resumes without retraining).
Writes ``benchmarks/out/themes_finetune.json``.

    nice -n 5 .venv/bin/python benchmarks/themes_finetune.py [--protocol split] [--only NAME ...]
    nice -n 5 .venv/bin/python benchmarks/themes_finetune.py --cost        # what a full fine-tune would cost
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.data import label_matrix, label_texts, load_labels, multilabel_folds, train_test_indices
from edumine.models.themes.estimators import make_estimator
from edumine.models.themes.evaluation import decision_layer, held_out, theme_metrics

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CACHE = ROOT / "data" / "cache" / "embeddings"

APPROACHES: dict[str, tuple[str, dict]] = {
    "default: tfidf1+minilm C=1 (onnx int8, 256)": ("themes.tfidf_minilm_logreg.v1", {}),
    "tfidf_logreg": ("themes.tfidf_logreg.v1", {}),
    "frozen MiniLM 128 (torch) + LR": ("themes.minilm_finetuned.v1", {"epochs": 0, "tfidf_weight": 0.0}),
    "frozen MiniLM 128 + tfidf": ("themes.minilm_finetuned.v1", {"epochs": 0, "tfidf_weight": 0.5}),
    "finetuned top layer 128, 2 ep": ("themes.minilm_finetuned.v1", {"epochs": 2, "probe_steps": 0, "head_lr": 2e-3,
                                                                    "tfidf_weight": 0.0}),
    "finetuned top layer 128, 2 ep + tfidf": ("themes.minilm_finetuned.v1", {"epochs": 2, "probe_steps": 0,
                                                                             "head_lr": 2e-3, "tfidf_weight": 0.5}),
    "LP-FT top layer 128, 2 ep": ("themes.minilm_finetuned.v1", {"epochs": 2, "probe_steps": 300, "head_lr": 1e-4,
                                                                "tfidf_weight": 0.0}),
    "LP-FT top layer 128, 2 ep + tfidf": ("themes.minilm_finetuned.v1", {"epochs": 2, "probe_steps": 300,
                                                                         "head_lr": 1e-4, "tfidf_weight": 0.5}),
    "LP-FT top layer 128 head 96 + tail 32, 2 ep + tfidf": ("themes.minilm_finetuned.v1", {
        "epochs": 2, "tfidf_weight": 0.5, "head_tail": 32, "probe_steps": 300, "head_lr": 1e-4}),
}


def average_precision(Y: np.ndarray, P: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(np.mean([average_precision_score(Y[:, t], P[:, t]) for t in range(Y.shape[1]) if Y[:, t].any()]))


def split_protocol(factory, texts, Y, theme_ids, train, test, seed):  # noqa: ANN001,ANN201
    """One fit on 4/5 of ``train``; calibration and thresholds from its scores on the other 1/5."""
    calib = train[multilabel_folds(Y[train], 5, seed + 101)[0]]
    fit_rows = np.setdiff1d(train, calib)
    model = factory().fit([texts[i] for i in fit_rows], Y[fit_rows])
    calibrator, thresholds, _ = decision_layer(Y[calib], model.predict_proba([texts[i] for i in calib]))
    raw = model.predict_proba([texts[i] for i in test])
    P = calibrator.transform(raw)
    result = theme_metrics(Y[test], (P >= thresholds).astype(np.int8), theme_ids)
    result["macro_ap"] = round(average_precision(Y[test], raw), 4)
    return result


def student_protocol(teacher_factory, texts, Y, theme_ids, train, test, seed, pool, C=10.0, ngram_max=2):  # noqa: ANN001,ANN201
    """A TF-IDF student distilled from the teacher: the teacher (fitted on 4/5 of ``train``, as in ``split``)
    labels ``pool`` (unlabelled corpus posts) with its calibrated probabilities; one logistic regression per
    theme learns from the labelled rows (hard labels) and the pool (soft labels: each post twice, as a
    positive weighted p and a negative weighted 1 - p). Calibration and thresholds as in ``split``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    calib = train[multilabel_folds(Y[train], 5, seed + 101)[0]]
    fit_rows = np.setdiff1d(train, calib)
    teacher = teacher_factory().fit([texts[i] for i in fit_rows], Y[fit_rows])
    t_calibrator, _, _ = decision_layer(Y[calib], teacher.predict_proba([texts[i] for i in calib]))
    started = time.perf_counter()
    soft = t_calibrator.transform(teacher.predict_proba(pool))
    teacher_seconds = time.perf_counter() - started
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, ngram_max), min_df=2, sublinear_tf=True, strip_accents="unicode",
                                 dtype=np.float32)
    labelled = [texts[i] for i in fit_rows]
    X = vectorizer.fit_transform(labelled + list(pool))
    from scipy import sparse

    X2 = sparse.vstack([X, X[len(labelled):]], format="csr")
    models = []
    for t in range(Y.shape[1]):
        hard = Y[fit_rows, t].astype(float)
        p = soft[:, t]
        y = np.concatenate([hard, np.ones(len(pool)), np.zeros(len(pool))])
        w = np.concatenate([np.ones(len(hard)), p, 1 - p])
        # hard rows balanced like the other models; pool rows keep their soft weights
        pos = max(hard.sum(), 1.0)
        w[:len(hard)] *= np.where(hard == 1, len(hard) / (2 * pos), len(hard) / (2 * max(len(hard) - pos, 1.0)))
        models.append(LogisticRegression(C=C, max_iter=2000, solver="liblinear", random_state=seed)
                      .fit(sparse.vstack([X[:len(labelled)], X2[len(labelled):]]), y, sample_weight=w))
    fit_seconds = time.perf_counter() - started

    def student(rows: list[str]) -> np.ndarray:
        Z = vectorizer.transform(rows)
        return np.column_stack([m.predict_proba(Z)[:, 1] for m in models])

    calibrator, thresholds, _ = decision_layer(Y[calib], student([texts[i] for i in calib]))
    started = time.perf_counter()
    raw = student([texts[i] for i in test])
    label_seconds = time.perf_counter() - started
    P = calibrator.transform(raw)
    result = theme_metrics(Y[test], (P >= thresholds).astype(np.int8), theme_ids)
    result["macro_ap"] = round(average_precision(Y[test], raw), 4)
    result["pool"] = len(pool)
    result["teacher_docs_per_s"] = round(len(pool) / teacher_seconds, 1)
    result["student_fit_seconds"] = round(fit_seconds, 1)
    result["student_docs_per_s_in_process"] = round(len(test) / label_seconds, 1)
    return result


def unlabelled_pool(n: int, seed: int) -> list[str]:
    """``n`` cleaned corpus posts of other eras (2009-13 top posts, 2023 scrape; not in the labels)."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from themes_speed import sample_posts

    from edumine.models.text.clean import clean_text

    posts = sample_posts(4 * n, seed)
    texts = [clean_text(t, b) for t, b in zip(posts["title"], posts["body"])]
    return [t for t in texts if len(t.split()) >= 25][:n]


def full_model_cost(texts: list[str], n: int = 64) -> dict:
    """Texts/s of the whole MiniLM on ``n`` labelled texts: forward, forward + backward (fp32, bf16 autocast)."""
    import torch

    from edumine.models.themes.finetune import load_bert, pad
    from edumine.models.embeddings.onnx import MiniLMOnnxEmbedder

    torch.manual_seed(0)
    model = load_bert()
    out = {"load_before": open("/proc/loadavg").read().split()[0], "threads": torch.get_num_threads()}
    for length in (128, 256):
        ids, mask = pad(MiniLMOnnxEmbedder(max_seq_length=length).token_ids(texts[:n]))
        batches = [(torch.from_numpy(ids[i:i + 16]), torch.from_numpy(mask[i:i + 16])) for i in range(0, n, 16)]
        model.eval()
        started = time.perf_counter()
        with torch.inference_mode():
            for a, m in batches:
                model(input_ids=a, attention_mask=m)
        out[f"forward_fp32_{length}"] = round(n / (time.perf_counter() - started), 2)
        model.train()
        for name, autocast in (("fp32", False), ("bf16", True)):
            started = time.perf_counter()
            for a, m in batches:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = model(input_ids=a, attention_mask=m).last_hidden_state.float().mean()
                loss.backward()
            out[f"forward_backward_{name}_{length}"] = round(n / (time.perf_counter() - started), 2)
    out["load_after"] = open("/proc/loadavg").read().split()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="approach names (substring match)")
    parser.add_argument("--protocol", choices=["split", "held-out"], default="split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--student", nargs="*", default=[], help="approach names (substring): distil a TF-IDF "
                        "student from them over --pool unlabelled corpus posts (split protocol)")
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--cost", action="store_true", help="only time the whole MiniLM's forward and forward + "
                        "backward passes (texts/s) on 64 labelled texts")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "themes_finetune.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    codebook = load_codebook(SHARED / "codebook" / "sdl_themes.yaml")
    records = load_labels([SHARED / "labels" / "sdl_train.jsonl"], codebook)
    texts = label_texts(records)
    Y = label_matrix(records, codebook.ids)
    train, test = train_test_indices(Y, 0.2, seed=args.seed)
    if args.cost:
        cost = full_model_cost(texts)
        print("whole MiniLM, texts/s:", cost, flush=True)
        save(args.out, "full-model cost", cost)
        return
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name, (registry_name, params) in APPROACHES.items():
        if args.student and any(o in name for o in args.student):
            def teacher(registry_name: str = registry_name, params: dict = params):  # noqa: ANN202
                return make_estimator(registry_name, codebook, params, cache_dir=str(CACHE), seed=args.seed)
            started = time.perf_counter()
            result = student_protocol(teacher, texts, Y, codebook.ids, train, test, args.seed,
                                      unlabelled_pool(args.pool, args.seed + 7))
            key = f"student tfidf1-2 <- {name} [pool {result['pool']}]"
            results[key] = {**{k: v for k, v in result.items() if k not in ("per_theme", "exact_match")},
                            "per_theme_f1": {t: m["f1"] for t, m in result["per_theme"].items()},
                            "seconds": round(time.perf_counter() - started, 1),
                            "load": open("/proc/loadavg").read().split()[0]}
            print(key, {k: v for k, v in results[key].items() if k != "per_theme_f1"}, flush=True)
            save(args.out, key, results[key])
        if args.only is None and args.student:
            continue
        if args.only and not any(o in name for o in args.only):
            continue
        def factory(registry_name: str = registry_name, params: dict = params):  # noqa: ANN202
            return make_estimator(registry_name, codebook, params, cache_dir=str(CACHE), seed=args.seed)
        started = time.perf_counter()
        if args.protocol == "split":
            result = split_protocol(factory, texts, Y, codebook.ids, train, test, args.seed)
        else:
            result = held_out(factory, texts, Y, codebook.ids, train, test, seed=args.seed)
        seconds = time.perf_counter() - started
        entry = {"classifier": registry_name, "params": params, "protocol": args.protocol,
                 "macro_f1": result["macro_f1"], "micro_f1": result["micro_f1"], "macro_ap": result.get("macro_ap"),
                 "per_theme_f1": {t: m["f1"] for t, m in result["per_theme"].items()},
                 "seconds": round(seconds, 1), "load": open("/proc/loadavg").read().split()[0]}
        results[f"{name} [{args.protocol}]"] = entry
        print(f"{name} [{args.protocol}]: macro-F1 {entry['macro_f1']:.3f} micro {entry['micro_f1']:.3f} "
              f"macro-AP {entry['macro_ap']} ({seconds:.0f}s, load {entry['load']})", flush=True)
        save(args.out, f"{name} [{args.protocol}]", entry)


def save(out: Path, key: str, entry: dict) -> None:
    """Add one row to the results file, re-read first (another run may have added rows meanwhile)."""
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[key] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
