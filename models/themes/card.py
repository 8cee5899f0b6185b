"""The theme model's card (``model_card.md``) and metrics (``metrics.json``), written next to the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edumine.manifest import write_json_atomic

THIN_BELOW = 10
AGREEMENT_TARGET = 0.9


def write_model_card(model: Any, folder: Path) -> Path:
    info = model.info
    write_json_atomic(info, folder / "metrics.json")
    path = folder / "model_card.md"
    path.write_text(model_card(model), encoding="utf-8")
    return path


def _effective_params(model: Any) -> dict[str, Any]:
    params = model.new_estimator().get_params()
    return {k: v for k, v in params.items() if k not in ("codebook", "cache_dir") and not hasattr(v, "get_params")}


def zero_shot_card(model: Any) -> str:
    info = model.info
    return "\n".join([
        f"# Model card: SDL themes, **zero-shot** (`{info['classifier']}`)", "",
        f"Built {info['trained_at']} by `edumine` from the codebook text alone: `{info['codebook']}` "
        f"({len(model.codebook.ids)} themes, fingerprint {info['codebook_fingerprint']}); no labelled posts were found "
        f"in " + ", ".join(f"`{p}`" for p in info["label_files"]) + ".", "",
        "## Approach",
        "- Each theme's descriptions (label + definition, cues, examples) and each post are embedded with MiniLM; a "
        "post gets a theme when its similarity to that theme's closest description is high enough and near its best "
        "theme's (`models/themes/zeroshot.py`).",
        "- **Scores are not probabilities** (uncalibrated; there are no labels to calibrate on) and prevalence is "
        "plain classify-and-count, marked `method = zero-shot` and `reliable = false` in `theme_prevalence`.", "",
        "## Quality",
        "- Measured on the SDL codebook against its 2,633 labels: see the zero-shot row of `docs/themes.md` (far below "
        "a trained classifier). On another codebook its quality is unknown until posts are labelled.",
        "- Next step: `edumine themes export-for-labelling`, label the sheet, `edumine themes import-labels FILE`; "
        "the next run trains a calibrated classifier.", ""])


def model_card(model: Any) -> str:
    info = model.info
    if info.get("zero_shot"):
        return zero_shot_card(model)
    codebook = model.codebook
    supports: dict[str, int] = info["supports"]
    evaluation: dict[str, Any] | None = info.get("evaluation")
    thin = [t for t in codebook.ids if supports.get(t, 0) < THIN_BELOW]
    lines = [
        f"# Model card: SDL theme classifier `{info['classifier']}`",
        "",
        f"Trained {info['trained_at']} by `edumine` (seed {info['seed']}). Folder: `{Path(info.get('folder', '.')).name}`.",
        "",
        "## Data",
        f"- Codebook: `{info['codebook']}` ({len(codebook.ids)} themes, fingerprint {info['codebook_fingerprint']}).",
        f"- Labelled posts: {info['n_labelled']} ({info['n_imported']} imported by a person through "
        f"`edumine themes import-labels`), {info['n_no_theme']} with no theme; labels fingerprint "
        f"{info['labels_fingerprint']}.",
        "- Label files: " + ", ".join(f"`{p}`" for p in info["label_files"]) + ".",
        "- Text: `edumine.models.text.clean.clean_text(title, body)` (HTML entities, markdown, links, quotes and edit "
        "lines removed), the same function the pipeline and `edumine themes predict` use.",
        "",
        "## Approach",
        f"- Estimator `{info['classifier']}` (see `models/themes/estimators.py`), effective parameters "
        f"`{json.dumps(_effective_params(model), sort_keys=True)}`.",
        f"- One decision threshold per theme, tuned for F1 on out-of-fold probabilities of an inner "
        "cross-validation of the training set (never on the posts scored).",
        "- The codebook's own text (each theme's label + definition, example and cues) is added to the training "
        f"data as extra positive examples with weight {_effective_params(model).get('codebook_weight', 0)} "
        "(0 = not used); `themes.ensemble.v1` also mixes in a zero-shot similarity to those descriptions for thin "
        "themes.",
        "",
        "## Scores",
    ]
    if evaluation:
        gap = AGREEMENT_TARGET - evaluation["macro_f1"]
        lines += [
            f"Nested {evaluation['n_splits']}-fold cross-validation on the labelled posts (thresholds tuned inside "
            f"each training fold): **macro-F1 {evaluation['macro_f1']:.3f}** (fold-wise {evaluation['fold_macro_f1_mean']:.3f}"
            f" ± {evaluation['fold_macro_f1_sd']:.3f}), micro-F1 {evaluation['micro_f1']:.3f}, exact match "
            f"{evaluation['exact_match']:.3f}. The target, agreement between two independent annotators on this "
            f"codebook, is about {AGREEMENT_TARGET}: this model is {gap:.3f} below it." if gap > 0 else
            f"Nested CV macro-F1 {evaluation['macro_f1']:.3f}, at or above the ~{AGREEMENT_TARGET} agreement target.",
            "",
            "| theme | labelled | threshold | precision | recall | F1 |",
            "|---|---|---|---|---|---|",
        ]
        for theme in codebook.ids:
            m = evaluation["per_theme"][theme]
            flag = " (thin)" if theme in thin else ""
            lines.append(f"| {theme}{flag} | {supports[theme]} | {info['thresholds'][theme]:.2f} | {m['precision']:.2f} "
                         f"| {m['recall']:.2f} | {m['f1']:.2f} |")
        lines += ["", "Which theme a missed theme was taken for (cross-validation, counts of posts):", ""]
        for theme, row in evaluation["confusion"].items():
            shown = ", ".join(f"{other} {count}" for other, count in list(row.items())[:4])
            lines.append(f"- {theme}: {shown}")
        lines += calibration_lines(model, evaluation)
    else:
        lines.append("Not evaluated (`themes.eval_folds: 0`). Thresholds: " +
                     ", ".join(f"{t} {v:.2f}" for t, v in info["thresholds"].items()))
    lines += ["", "## Known weaknesses"]
    if thin:
        lines.append("- **Thin themes**: " + ", ".join(f"{t} ({supports[t]} labelled)" for t in thin) +
                     ". With so few examples these themes rest mostly on the codebook text (definitions, cues, "
                     "example); their scores are unstable and their F1 is measured on a handful of posts. Label "
                     "more of them with `edumine themes export-for-labelling` / `import-labels`.")
    floor = model.info.get("reliability_floor", 0.5)
    weak = [t for t, m in (evaluation or {}).get("per_theme", {}).items() if m["f1"] < floor]
    if weak:
        lines.append(f"- **Unreliable** (cross-validated F1 below `themes.reliability_floor` {floor} at training): " +
                     ", ".join(f"{t} (F1 {evaluation['per_theme'][t]['f1']:.2f})" for t in weak) +
                     ". `theme_prevalence` flags them `reliable = false`; the report shows them as flagged.")
    if any(Path(p).name == "sdl_train.jsonl" for p in info["label_files"]):
        lines.append("- The shipped labels are r/teaching and r/teachingresources self posts of 2017-18 and "
                     "r/teachingresources comments, all with at least 25 words; other communities, years (pre-2014 "
                     "top posts, 2023 scrapes), r/teaching comments and very short posts are out of distribution: "
                     "their themes are less reliable, and prevalence shifts across corpora can partly be model drift. "
                     "Comments and posts differ in how a theme looks: the mean probability's error is largest "
                     "between them (see Prevalence).")
    lines += [
        "- Themes that are defined by the writer's stance rather than topic (offering vs seeking advice, reflecting, "
        "sharing an experience) are confused with each other and with emotional support.",
        "- MiniLM reads only the first ~256 word pieces of a post; long posts are judged on their beginning.",
        ("- Probabilities are calibrated per theme (see Calibration); decisions use the tuned thresholds (the "
         "`themes` list), not 0.5." if model.calibrated else
         "- **Scores are not calibrated** (`themes.calibration: none`): they rank posts but are not probabilities; "
         "prevalence uses adjusted classify-and-count."),
    ]
    return "\n".join(lines) + "\n"


def calibration_lines(model: Any, evaluation: dict[str, Any]) -> list[str]:
    """Calibration (Brier, ECE, reliability) and the prevalence estimators' measured errors."""
    calibration = evaluation.get("calibration")
    if not calibration:
        return []
    method = model.info.get("calibration", "platt")
    lines = ["", "## Calibration", "",
             f"Per-theme `{method}` calibration fitted on out-of-fold scores of each training set (nested CV, so the "
             f"scores below are on posts the calibration never saw). Mean Brier score {calibration['brier_mean']:.4f}, "
             f"mean expected calibration error (10 bins) {calibration['ece_mean']:.4f}.", "",
             "| theme | labelled share | mean probability | Brier | ECE |", "|---|---|---|---|---|"]
    for theme, m in calibration["per_theme"].items():
        lines.append(f"| {theme} | {m['share']:.3f} | {m['mean_p']:.3f} | {m['brier']:.4f} | {m['ece']:.4f} |")
    lines += ["", "Reliability (all themes pooled; out-of-fold):", "",
              "| probability bin | (post, theme) pairs | mean probability | observed share |", "|---|---|---|---|"]
    lines += [f"| {r['bin']} | {r['pairs']} | {r['mean_p']:.3f} | {r['observed']:.3f} |" for r in calibration["reliability"]]
    errors = evaluation.get("prevalence_errors") or {}
    if errors.get("groups"):
        chosen = model.info.get("prevalence_method")
        shown = ", ".join(f"{name} {errors[name]:.4f} (max {errors['max'][name]:.3f})"
                          for name in ("classify-count", "adjusted-classify-count", "mean-calibrated-probability")
                          if name in errors)
        lines += ["", "## Prevalence", "",
                  f"Mean absolute error of each theme's estimated share over {errors['groups']} groups of held-out "
                  f"posts (CV fold x kind x community), averaged over themes: {shown}. `theme_prevalence` uses "
                  f"**{chosen}** (`themes.prevalence_method: auto` picks the smaller error); its intervals add the "
                  "classifier's measured uncertainty (Beta draws of the CV true/false-positive rates, or the CV "
                  "spread of the mean probability's group error beyond chance) to a bootstrap over docs."]
        pooled = evaluation.get("prevalence_errors_pooled") or {}
        if pooled.get("groups"):
            lines.append("")
            lines.append(f"Over whole kind x community groups ({', '.join(map(str, pooled['sizes']))} held-out texts): " +
                         ", ".join(f"{name} {pooled[name]:.4f}" for name in
                                   ("classify-count", "adjusted-classify-count", "mean-calibrated-probability")
                                   if name in pooled) + ".")
    return lines
