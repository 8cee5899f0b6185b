"""The ``themes`` config section (kept free of heavy imports: stage discovery loads it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from edumine.config import StrictModel

DEFAULT_CLASSIFIER = "themes.tfidf_minilm_logreg.v1"
DEMO_LAKE = Path("data/lake")  # where ``edumine themes`` keeps models when no config names a lake


class ExportConfig(StrictModel):
    """What ``edumine themes export-for-labelling`` writes by default."""

    n: int = Field(60, ge=1, description="posts per export")
    path: Path = Path("data/labels/to_label.csv")


class ThemesConfig(StrictModel):
    """The ``themes`` section: codebook, labels, classifier, where models and caches live."""

    components = {"classifier": ("theme_classifiers", "params")}

    enabled: bool = True
    codebook: Path = Path("../shared/codebook/sdl_themes.yaml")
    labels: list[Path] = Field(default_factory=lambda: [Path("../shared/labels/sdl_train.jsonl")])
    imported_labels: Path = Path("data/labels/sdl_imported.jsonl")
    classifier: str = DEFAULT_CLASSIFIER
    params: dict[str, Any] = Field(default_factory=dict, description="keyword parameters of the classifier")
    seed: int = 0
    threshold_folds: int = Field(5, ge=2, description="inner CV folds whose out-of-fold scores tune thresholds")
    max_predicted_ratio: float = Field(3.0, ge=0, description="a theme's threshold may flag at most this many "
                                       "times its labelled posts in tuning (0: no limit)")
    eval_folds: int = Field(5, ge=0, description="nested CV folds for the model card (0: skip the evaluation)")
    model_dir: Optional[Path] = Field(None, description="trained models (<classifier>-<hash>/); default: the "
                                      "lake's models/themes (a catalog artefact)")
    cache_dir: Optional[Path] = Field(None, description="vectors of texts without a lake uid (labels, predict "
                                      "input); default: the lake's cache/texts (a catalog artefact)")
    kinds: list[str] = Field(default_factory=lambda: ["post"], description="post and/or comment")
    min_words: int = Field(5, ge=0, description="unused: the stage labels the docs preprocessing marked usable "
                                                "(kept so that older configs load)")
    interval_level: float = Field(0.95, gt=0, lt=1)
    calibration: Literal["platt", "isotonic", "none"] = Field(
        "platt", description="per-theme map of scores to probabilities, fitted on out-of-fold scores")
    prevalence_method: Literal["auto", "adjusted-classify-count", "mean-calibrated-probability"] = Field(
        "auto", description="theme_prevalence estimator; auto: the one with the smaller error on CV groups")
    reliability_floor: float = Field(0.5, ge=0, le=1, description="themes whose CV F1 is below this are "
                                     "flagged reliable = false in theme_prevalence, the store and the report")
    export: ExportConfig = ExportConfig()

    def with_stores(self, model_dir: Path, cache_dir: Path) -> ThemesConfig:
        """A copy whose unset model and cache folders are these (a lake's ``models/themes``, ``cache/texts``)."""
        return self.model_copy(update={"model_dir": self.model_dir or model_dir,
                                       "cache_dir": self.cache_dir or cache_dir})

    def resolved(self, base: Path | None = None) -> ThemesConfig:
        """A copy with every path made absolute against ``base`` (the working directory by default); unset
        model and cache folders are the demo lake's (``data/lake``)."""
        base = base or Path.cwd()
        self = self.with_stores(DEMO_LAKE / "models" / "themes", DEMO_LAKE / "cache" / "texts")

        def fix(path: Path) -> Path:
            path = Path(path).expanduser()
            return Path(os.path.normpath(path if path.is_absolute() else base / path))

        return self.model_copy(update={
            "codebook": fix(self.codebook), "labels": [fix(p) for p in self.labels],
            "imported_labels": fix(self.imported_labels), "model_dir": fix(self.model_dir),
            "cache_dir": fix(self.cache_dir),
            "export": self.export.model_copy(update={"path": fix(self.export.path)})})
