"""Cross-validated comparison of SDL theme classifiers on the shared labels.

For each approach: nested 5-fold multi-label-stratified cross-validation (thresholds tuned inside each
training fold) repeated over seeds, and one held-out split (20 %, stratified, never used for tuning).
Writes ``benchmarks/out/themes_eval.json`` and ``.md`` (per-theme F1 for each approach).

    .venv/bin/python benchmarks/themes_eval.py [--seeds 0 1 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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

APPROACHES: dict[str, tuple[str, dict]] = {
    "tfidf_logreg": ("themes.tfidf_logreg.v1", {"codebook_weight": 0.0}),
    "tfidf_logreg+codebook": ("themes.tfidf_logreg.v1", {"codebook_weight": 1.0}),
    "minilm_logreg": ("themes.minilm_logreg.v1", {"codebook_weight": 0.0}),
    "minilm_logreg+codebook": ("themes.minilm_logreg.v1", {"codebook_weight": 1.0}),
    "minilm_logreg+codebook*3": ("themes.minilm_logreg.v1", {"codebook_weight": 3.0}),
    "zeroshot(codebook only)": ("themes.zeroshot.v1", {}),
    "ensemble(no zeroshot)": ("themes.ensemble.v1", {"zeroshot_weight": 0.0}),
    "ensemble": ("themes.ensemble.v1", {}),
    "ensemble+codebook*3": ("themes.ensemble.v1", {"codebook_weight": 3.0}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="approach names to run (default: all)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--extra", type=str, default=None,
                        help='JSON {"name": ["registry.name", {params}]} of further approaches to try')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    codebook = load_codebook(SHARED / "codebook" / "sdl_themes.yaml")
    records = load_labels([SHARED / "labels" / "sdl_train.jsonl"], codebook)
    texts = label_texts(records)
    Y = label_matrix(records, codebook.ids)
    approaches = dict(APPROACHES)
    if args.extra:
        approaches.update({k: tuple(v) for k, v in json.loads(args.extra).items()})
    names = args.only or list(approaches)

    started = time.perf_counter()
    make_estimator("themes.minilm_logreg.v1", codebook, cache_dir=str(CACHE)).fit(texts, Y)  # fill the cache
    embed_seconds = time.perf_counter() - started
    train, test = train_test_indices(Y, 0.2, seed=0)

    results = {"labels": len(records), "supports": dict(zip(codebook.ids, Y.sum(axis=0).tolist())),
               "held_out_size": int(len(test)), "embed_seconds_first_run": round(embed_seconds, 1),
               "load": os.getloadavg(), "approaches": {}}
    for name in names:
        classifier, params = approaches[name]

        def factory(classifier: str = classifier, params: dict = params, seed: int = 0):  # noqa: ANN202
            return make_estimator(classifier, codebook, params, cache_dir=str(CACHE), seed=seed)

        t0 = time.perf_counter()
        runs = [cross_validate(factory, texts, Y, codebook.ids, n_splits=args.folds, seed=s) for s in args.seeds]
        cv_seconds = time.perf_counter() - t0
        hold = held_out(factory, texts, Y, codebook.ids, train, test)
        per_theme = {t: round(float(np.mean([r["per_theme"][t]["f1"] for r in runs])), 4) for t in codebook.ids}
        results["approaches"][name] = {
            "classifier": classifier, "params": params,
            "cv_macro_f1": round(float(np.mean([r["macro_f1"] for r in runs])), 4),
            "cv_macro_f1_sd_over_seeds": round(float(np.std([r["macro_f1"] for r in runs])), 4),
            "cv_micro_f1": round(float(np.mean([r["micro_f1"] for r in runs])), 4),
            "cv_per_theme_f1": per_theme,
            "cv_first_seed": runs[0],
            "held_out_macro_f1": hold["macro_f1"], "held_out_micro_f1": hold["micro_f1"],
            "held_out_per_theme_f1": {t: m["f1"] for t, m in hold["per_theme"].items()},
            "seconds_per_cv": round(cv_seconds / len(args.seeds), 1),
        }
        print(f"{name:28s} cv macro-F1 {results['approaches'][name]['cv_macro_f1']:.3f} "
              f"(sd {results['approaches'][name]['cv_macro_f1_sd_over_seeds']:.3f})  micro "
              f"{results['approaches'][name]['cv_micro_f1']:.3f}  held-out macro {hold['macro_f1']:.3f}  "
              f"{cv_seconds / len(args.seeds):.0f}s/cv", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "themes_eval.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "themes_eval.md").write_text(markdown(results, codebook.ids) + "\n")
    print(f"wrote {args.out / 'themes_eval.md'}")


def markdown(results: dict, theme_ids: list[str]) -> str:
    names = list(results["approaches"])
    lines = [f"{results['labels']} labelled posts; nested {results['approaches'][names[0]]['cv_first_seed']['n_splits']}"
             f"-fold CV (mean over seeds) and a {results['held_out_size']}-post held-out split.", "",
             "| approach | CV macro-F1 | CV micro-F1 | held-out macro-F1 | held-out micro-F1 |", "|---|---|---|---|---|"]
    for name in names:
        a = results["approaches"][name]
        lines.append(f"| {name} | {a['cv_macro_f1']:.3f} ± {a['cv_macro_f1_sd_over_seeds']:.3f} | {a['cv_micro_f1']:.3f} "
                     f"| {a['held_out_macro_f1']:.3f} | {a['held_out_micro_f1']:.3f} |")
    lines += ["", "Per-theme F1, CV (held-out):", "",
              "| theme | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for theme in theme_ids:
        cells = [f"{results['approaches'][n]['cv_per_theme_f1'][theme]:.2f} "
                 f"({results['approaches'][n]['held_out_per_theme_f1'][theme]:.2f})" for n in names]
        lines.append(f"| {theme} | {results['supports'][theme]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
