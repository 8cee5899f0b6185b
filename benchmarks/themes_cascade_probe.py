"""Does the cascade's band find the texts the default decides differently? On the held-out split of
``themes_compare.py`` (seed 0): the static and the default ``ThemeModel`` fitted on the training part (five-fold
calibration and thresholds, as standalone), then, per deferred share, the share of held-out texts on which the
two models' decisions differ (any theme) that the static model's band would defer, and the macro-F1 of taking
the default's decisions on exactly those texts (no re-calibration: an upper bound of what the band can give).

    nice .venv/bin/python benchmarks/themes_cascade_probe.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edumine.models.themes.classifier import ThemeModel
from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.data import label_matrix, label_texts, load_labels, train_test_indices
from edumine.models.themes.evaluation import theme_metrics
from edumine.models.themes.labelling import uncertainty

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CACHE = ROOT / "data" / "cache" / "embeddings"


def main() -> None:
    codebook = load_codebook(SHARED / "codebook" / "sdl_themes.yaml")
    records = load_labels([SHARED / "labels" / "sdl_train.jsonl"], codebook)
    texts, Y = label_texts(records), label_matrix(records, codebook.ids)
    train, test = train_test_indices(Y, 0.2, seed=0)
    fit = {}
    for name in ("themes.tfidf_static_logreg.v1", "themes.tfidf_minilm_logreg.v1"):
        model = ThemeModel(codebook, name, {}, seed=0, cache_dir=str(CACHE))
        oof = model.fit_out_of_fold([texts[i] for i in train], Y[train], threshold_folds=5)
        fit[name] = (model, oof)
    (fast, fast_oof), (slow, _) = fit["themes.tfidf_static_logreg.v1"], fit["themes.tfidf_minilm_logreg.v1"]
    probe = [texts[i] for i in test]
    P_fast, P_slow = fast.predict_proba(probe), slow.predict_proba(probe)
    d_fast, d_slow = fast.decide(P_fast), slow.decide(P_slow)
    differ = (d_fast != d_slow).any(axis=1)
    wrong_fast = (d_fast != Y[test]).any(axis=1) & ((d_slow == Y[test]).sum(axis=1) > (d_fast == Y[test]).sum(axis=1))
    distance = uncertainty(P_fast, fast.thresholds_)[0]
    oof_distance = uncertainty(fast_oof, fast.thresholds_)[0]
    out = {"held_out": len(test), "decisions_differ": int(differ.sum()), "default_better": int(wrong_fast.sum()),
           "static_macro_f1": theme_metrics(Y[test], d_fast, codebook.ids)["macro_f1"],
           "default_macro_f1": theme_metrics(Y[test], d_slow, codebook.ids)["macro_f1"], "shares": {}}
    for share in (0.1, 0.2, 0.3, 0.4, 0.5):
        band = float(np.quantile(oof_distance, share))
        deferred = distance < band
        mixed = np.where(deferred[:, None], d_slow, d_fast)
        out["shares"][share] = {"deferred": round(float(deferred.mean()), 3),
                                "differing_caught": round(float(deferred[differ].mean()), 3),
                                "default_better_caught": round(float(deferred[wrong_fast].mean()), 3),
                                "macro_f1": theme_metrics(Y[test], mixed, codebook.ids)["macro_f1"]}
    print(json.dumps(out, indent=1))
    target = ROOT / "benchmarks" / "out" / "themes_cascade_probe.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
