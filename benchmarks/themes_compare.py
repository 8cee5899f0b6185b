"""Theme classifiers on the 2,633 shared labels: held-out split first (cheap), nested CV for the finalists.

Held-out: one of five iterative-stratification folds (by theme; ~525 texts, posts and comments) never used
for tuning; calibration and thresholds come from inner 5-fold out-of-fold scores of the training part.
``--cv`` adds nested 5-fold CV (calibration, thresholds inside each training fold) with the Brier score,
ECE and the prevalence estimators' errors on groups (fold x kind x community). Embeddings come from the
caches under ``data/cache/embeddings`` (filled on first use). Writes ``benchmarks/out/themes_compare.json``.

    nice .venv/bin/python benchmarks/themes_compare.py [--only NAME ...] [--cv NAME ...] [--calibration platt]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.data import label_matrix, label_texts, load_labels, train_test_indices
from edumine.models.themes.estimators import make_estimator
from edumine.models.themes.evaluation import cross_validate, held_out

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CACHE = ROOT / "data" / "cache" / "embeddings"
ONNX = "embeddings.minilm_onnx.v1"
STATIC = "embeddings.static_minilm.v1"

APPROACHES: dict[str, tuple[str, dict]] = {
    "default: tfidf1+minilm C=1 (onnx int8, 256)": ("themes.tfidf_minilm_logreg.v1", {}),
    "tfidf_logreg": ("themes.tfidf_logreg.v1", {}),
    "minilm_logreg.v1 (torch bf16, 256; old default)": ("themes.minilm_logreg.v1", {"codebook_weight": 3.0}),
    "minilm_logreg.v2 (onnx int8, 256)": ("themes.minilm_logreg.v2", {}),
    "minilm_logreg.v2 (onnx int8, 128)": ("themes.minilm_logreg.v2", {"backend_params": {"max_seq_length": 128}}),
    "tfidf+minilm (onnx int8, 256)": ("themes.tfidf_minilm_logreg.v1", {}),
    "tfidf+minilm (onnx int8, 128)": ("themes.tfidf_minilm_logreg.v1", {"backend_params": {"max_seq_length": 128}}),
    "tfidf1+minilm (onnx int8, 256)": ("themes.tfidf_minilm_logreg.v1", {"ngram_max": 1}),
    "tfidf1+minilm (onnx int8, 128)": ("themes.tfidf_minilm_logreg.v1",
                                       {"ngram_max": 1, "backend_params": {"max_seq_length": 128}}),
    "tfidf1+minilm C=1 (256)": ("themes.tfidf_minilm_logreg.v1", {"ngram_max": 1, "C": 1.0}),
    "tfidf1+minilm C=4 (256)": ("themes.tfidf_minilm_logreg.v1", {"ngram_max": 1, "C": 4.0}),
    "tfidf1+minilm C=0.5 (256)": ("themes.tfidf_minilm_logreg.v1", {"ngram_max": 1, "C": 0.5}),
    "tfidf1+minilm C=1 w=2 (256)": ("themes.tfidf_minilm_logreg.v1", {"ngram_max": 1, "C": 1.0, "minilm_weight": 2.0}),
    "tfidf1+minilm C=1 cb=1 (256)": ("themes.tfidf_minilm_logreg.v1", {"ngram_max": 1, "C": 1.0, "codebook_weight": 1.0}),
    "tfidf1+minilm C=1 (256, head 192 + tail 64)": ("themes.tfidf_minilm_logreg.v1", {
        "ngram_max": 1, "C": 1.0, "backend_params": {"max_seq_length": 256, "head_tail": 64}}),
    "tfidf+minilm C=8 (256)": ("themes.tfidf_minilm_logreg.v1", {"C": 8.0}),
    "tfidf+minilm C=0.5 (256)": ("themes.tfidf_minilm_logreg.v1", {"C": 0.5}),
    "tfidf+minilm w=2 (256)": ("themes.tfidf_minilm_logreg.v1", {"minilm_weight": 2.0}),
    # static MiniLM (model2vec recipe, embeddings.static_minilm.v1): word-piece vectors averaged
    "static256 + LR": ("themes.minilm_logreg.v2", {"backend": STATIC, "backend_params": {}}),
    "tfidf1+static256 C=1": ("themes.tfidf_minilm_logreg.v1", {"backend": STATIC, "backend_params": {}}),
    "tfidf1+static384 C=1": ("themes.tfidf_minilm_logreg.v1", {
        "backend": STATIC, "backend_params": {"pca_dims": None}}),
    "tfidf1+static256 C=1 w=2": ("themes.tfidf_minilm_logreg.v1", {
        "backend": STATIC, "backend_params": {}, "minilm_weight": 2.0}),
    "tfidf1+static256 C=2": ("themes.tfidf_minilm_logreg.v1", {"backend": STATIC, "backend_params": {}, "C": 2.0}),
    "tfidf1+static256 no-sif": ("themes.tfidf_minilm_logreg.v1", {
        "backend": STATIC, "backend_params": {"sif_coefficient": None}}),
    "tfidf_static_logreg.v1 (frozen)": ("themes.tfidf_static_logreg.v1", {}),
    "tfidf_static_logreg.v1 tuned 5 ep w=0.5": ("themes.tfidf_static_logreg.v1", {"tune_epochs": 5}),
    "tfidf_static_logreg.v1 tuned 10 ep w=0.5": ("themes.tfidf_static_logreg.v1", {"tune_epochs": 10}),
    "tfidf_static_logreg.v1 tuned 5 ep w=0.3": ("themes.tfidf_static_logreg.v1", {"tune_epochs": 5, "tuned_weight": 0.3}),
    "tfidf_static_logreg.v1 tuned 5 ep lr=1e-2": ("themes.tfidf_static_logreg.v1", {"tune_epochs": 5, "tune_lr": 1e-2}),
    "tfidf_static_logreg.v1 ngram 2": ("themes.tfidf_static_logreg.v1", {"ngram_max": 2}),
    "tfidf_static_logreg.v1 w=0.5": ("themes.tfidf_static_logreg.v1", {"static_weight": 0.5}),
    "tfidf_static_logreg.v1 C=0.5": ("themes.tfidf_static_logreg.v1", {"C": 0.5}),
    "tfidf_static_logreg.v1 cb=1": ("themes.tfidf_static_logreg.v1", {"codebook_weight": 1.0}),
    "tfidf_static_logreg.v1 tuned 5 ep alone": ("themes.tfidf_static_logreg.v1", {"tune_epochs": 5, "tuned_weight": 1.0}),
    "tfidf_static_logreg.v1 tuned 2 ep lr=1e-3 w=0.3": ("themes.tfidf_static_logreg.v1", {
        "tune_epochs": 2, "tune_lr": 1e-3, "tuned_weight": 0.3}),
    "tfidf_static_logreg.v1 tuned 2 ep lr=1e-3 alone": ("themes.tfidf_static_logreg.v1", {
        "tune_epochs": 2, "tune_lr": 1e-3, "tuned_weight": 1.0}),
    # cascade: the static model scores every text, the default rescores the share it is least sure about
    "cascade defer 0.1": ("themes.cascade.v1", {"defer_share": 0.1, "align_thresholds": False}),
    "cascade aligned, defer 0.1": ("themes.cascade.v1", {"defer_share": 0.1, "align_thresholds": True}),
    "cascade defer 0.2": ("themes.cascade.v1", {"defer_share": 0.2, "align_thresholds": False}),
    "cascade aligned, defer 0.2": ("themes.cascade.v1", {"defer_share": 0.2, "align_thresholds": True}),
    "cascade defer 0.3": ("themes.cascade.v1", {"defer_share": 0.3, "align_thresholds": False}),
    "cascade aligned, defer 0.3": ("themes.cascade.v1", {"defer_share": 0.3, "align_thresholds": True}),
    "cascade defer 0.4": ("themes.cascade.v1", {"defer_share": 0.4, "align_thresholds": False}),
    "cascade aligned, defer 0.4": ("themes.cascade.v1", {"defer_share": 0.4, "align_thresholds": True}),
    "cascade defer 0.5": ("themes.cascade.v1", {"defer_share": 0.5, "align_thresholds": False}),
    "cascade aligned, defer 0.5": ("themes.cascade.v1", {"defer_share": 0.5, "align_thresholds": True}),
    "cascade all themes, defer 0.2": ("themes.cascade.v1", {"defer_share": 0.2, "defer_on": "all", "align_thresholds": False}),
    "cascade all themes, defer 0.3": ("themes.cascade.v1", {"defer_share": 0.3, "defer_on": "all", "align_thresholds": False}),
    "cascade slow-better themes, defer 0.1": ("themes.cascade.v1", {"defer_share": 0.1, "defer_on": "slow_better", "align_thresholds": False}),
    "cascade slow-better themes, defer 0.2": ("themes.cascade.v1", {"defer_share": 0.2, "defer_on": "slow_better", "align_thresholds": False}),
    "cascade slow-better themes, defer 0.3": ("themes.cascade.v1", {"defer_share": 0.3, "defer_on": "slow_better", "align_thresholds": False}),
    "cascade slow-better themes, defer 0.4": ("themes.cascade.v1", {"defer_share": 0.4, "defer_on": "slow_better", "align_thresholds": False}),
    "cascade defer 0.0 (fast model only)": ("themes.cascade.v1", {"defer_share": 0.0, "align_thresholds": False}),
    "cascade defer 1.0 (slow model only)": ("themes.cascade.v1", {"band": 1e6, "align_thresholds": False}),
    "cascade inner 5, defer 0.0 (fast model only)": ("themes.cascade.v1", {"defer_share": 0.0, "inner_folds": 5, "align_thresholds": False}),
    "cascade inner 5, defer 0.2": ("themes.cascade.v1", {"defer_share": 0.2, "inner_folds": 5, "align_thresholds": False}),
    "cascade inner 5, defer 0.3": ("themes.cascade.v1", {"defer_share": 0.3, "inner_folds": 5, "align_thresholds": False}),
    "cascade inner 5, defer 1.0 (slow model only)": ("themes.cascade.v1", {"band": 1e6, "inner_folds": 5, "align_thresholds": False}),
}


def deferred_share(factory, texts, Y, train, test) -> dict:  # noqa: ANN001
    """A cascade's band and the share of held-out texts it defers (its sub-models come from the fit just made)."""
    model = factory().fit([texts[i] for i in train], Y[train])
    return {"band": round(model.band_, 4), "train_deferred_share": round(model.train_deferred_share_, 4),
            "held_out_deferred_share": round(float(model.deferred([texts[i] for i in test]).mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="approach names (substring match) for the held-out split")
    parser.add_argument("--cv", nargs="*", default=[], help="approach names (substring) for nested CV too")
    parser.add_argument("--calibration", default="platt", choices=["platt", "isotonic", "none"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zero-shot", action="store_true", help="score themes.zeroshot.v2 (codebook only) on "
                        "all labels over a grid of floor x margin")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "themes_compare.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    calibration = None if args.calibration == "none" else args.calibration

    codebook = load_codebook(SHARED / "codebook" / "sdl_themes.yaml")
    records = load_labels([SHARED / "labels" / "sdl_train.jsonl"], codebook)
    texts = label_texts(records)
    Y = label_matrix(records, codebook.ids)
    groups = [f"{r.get('kind', 'post')}:{r.get('subreddit', '')}" for r in records]
    train, test = train_test_indices(Y, 0.2, seed=args.seed)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.zero_shot:
        results["zero-shot"] = zero_shot_grid(codebook, texts, Y, train, test)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    for name, (registry_name, params) in APPROACHES.items():
        if args.only and not any(o in name for o in args.only):
            continue
        def factory(registry_name: str = registry_name, params: dict = params):  # noqa: ANN202
            return make_estimator(registry_name, codebook, params, cache_dir=str(CACHE), seed=args.seed)
        started = time.perf_counter()
        result = held_out(factory, texts, Y, codebook.ids, train, test, seed=args.seed, calibration=calibration)
        seconds = time.perf_counter() - started
        entry = {"classifier": registry_name, "params": params, "calibration": args.calibration,
                 "held_out_macro_f1": result["macro_f1"], "held_out_micro_f1": result["micro_f1"],
                 "held_out_per_theme_f1": {t: m["f1"] for t, m in result["per_theme"].items()},
                 "held_out_brier": result["calibration"]["brier_mean"], "held_out_ece": result["calibration"]["ece_mean"],
                 "held_out_seconds": round(seconds, 1), "load": open("/proc/loadavg").read().split()[0]}
        if registry_name == "themes.cascade.v1":
            entry.update(deferred_share(factory, texts, Y, train, test))
        if any(c in name for c in args.cv):
            started = time.perf_counter()
            cv = cross_validate(factory, texts, Y, codebook.ids, n_splits=5, inner_splits=5, seed=args.seed,
                                calibration=calibration, groups=groups)
            entry.update({"cv_macro_f1": cv["macro_f1"], "cv_micro_f1": cv["micro_f1"],
                          "cv_per_theme_f1": {t: m["f1"] for t, m in cv["per_theme"].items()},
                          "cv_calibration": cv["calibration"], "cv_prevalence_errors": cv["prevalence_errors"],
                          "cv_prevalence_errors_pooled": cv.get("prevalence_errors_pooled"),
                          "cv_seconds": round(time.perf_counter() - started, 1)})
        key = f"{name} [{args.calibration}]"
        results[key] = entry
        print(f"{key}: held-out macro-F1 {entry['held_out_macro_f1']:.3f} micro {entry['held_out_micro_f1']:.3f} "
              f"brier {entry['held_out_brier']:.4f} ece {entry['held_out_ece']:.4f} ({seconds:.0f}s)"
              + (f" deferred {entry['held_out_deferred_share']:.3f}" if "held_out_deferred_share" in entry else "")
              + (f"; CV macro-F1 {entry['cv_macro_f1']:.3f}, prevalence MAE {entry['cv_prevalence_errors']}"
                 if "cv_macro_f1" in entry else ""), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


def zero_shot_grid(codebook, texts, Y, train, test) -> dict:  # noqa: ANN001
    """Macro-F1 of the codebook-only model over a grid; the best on the training rows is scored on the held-out."""
    from edumine.models.themes.evaluation import theme_metrics
    from edumine.models.themes.zeroshot import CodebookZeroShot

    model = CodebookZeroShot(codebook=codebook, cache_dir=str(CACHE)).fit()
    sims = model.similarity(texts)
    grid = {}
    for floor in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35):
        for margin in (0.0, 0.02, 0.05, 0.1, 0.15):
            best = sims.max(axis=1, keepdims=True)
            pred = ((sims >= floor) & (sims >= best - margin)).astype(np.int8)
            grid[f"{floor}/{margin}"] = (theme_metrics(Y[train], pred[train], codebook.ids)["macro_f1"],
                                         theme_metrics(Y[test], pred[test], codebook.ids))
    chosen = max(grid, key=lambda k: grid[k][0])
    scores = grid[chosen][1]
    print(f"zero-shot floor/margin {chosen}: train-rows macro-F1 {grid[chosen][0]:.3f}, held-out macro-F1 "
          f"{scores['macro_f1']:.3f} micro {scores['micro_f1']:.3f}; defaults 0.2/0.05: "
          f"{grid['0.2/0.05'][1]['macro_f1']:.3f}", flush=True)
    return {"chosen": chosen, "train_macro_f1": grid[chosen][0], "held_out": scores,
            "default_held_out_macro_f1": grid["0.2/0.05"][1]["macro_f1"],
            "grid_train_macro_f1": {k: v[0] for k, v in grid.items()}}


if __name__ == "__main__":
    main()
