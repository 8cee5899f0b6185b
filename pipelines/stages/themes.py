"""Theme stage: label every usable doc with SDL themes, and theme prevalence per window.

Reads ``docs`` (the clean text and ``usable`` flag preprocessing wrote; the posts are not read or cleaned
again). Writes, through the runner:

- ``doc_themes``: uid, community, created_at, themes (list), scores (map theme -> p), model.
  Incremental: docs already labelled by the same model keep their row; only new uids are scored.
  A new model (new labels, codebook or settings) relabels everything, so one table never mixes models.
- ``theme_prevalence``: window_start, window_label, community, theme, theme_label, docs
  (usable docs in the window), theme_docs (docs the classifier flags), share (the quantification estimate
  named in ``method``: adjusted classify-and-count or the mean calibrated probability, corrected for the
  classifier's cross-validated error rates; ``zero-shot`` for a model without labels), share_low,
  share_high (interval over docs and over the classifier's measured error), model, method, f1 (the
  theme's cross-validated F1), reliable (f1 >= ``themes.reliability_floor``).

Trained models live in the lake's ``models/themes`` artefact (``themes.model_dir`` overrides it), keyed by
what they were trained on; vectors of label texts in ``cache/texts``. Models on a MiniLM backend read the
docs' vectors through ``models.embeddings.embed_with_cache`` from the lake's shared ``cache/embeddings``
(keyed by uid + ``docs.text_hash``): the topic stage with the same backend and parameters reuses them, and
so does a rerun.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from edumine import registry
from edumine.models.themes.config import ThemesConfig
from edumine.progress import Progress, phase
from edumine.stages import Output, RunInfo, Stage, StageResult

log = logging.getLogger(__name__)

SECTION = registry.config_sections.register("themes")(ThemesConfig)

DOC_THEMES_SCHEMA = pa.schema([
    pa.field("uid", pa.string()),
    pa.field("community", pa.string()),
    pa.field("created_at", pa.timestamp("us", tz="UTC")),
    pa.field("themes", pa.list_(pa.string())),
    pa.field("scores", pa.map_(pa.string(), pa.float32())),
    pa.field("model", pa.string()),
])


PREVALENCE_TYPES = {"window_start": "object", "window_label": "object", "community": "object", "theme": "object",
                    "theme_label": "object", "docs": "int64", "theme_docs": "int64", "share": "float64",
                    "share_low": "float64", "share_high": "float64", "model": "object", "method": "object",
                    "f1": "float64", "reliable": "bool"}
PREVALENCE_COLUMNS = list(PREVALENCE_TYPES)
CHUNK = 20_000


DOC_COLUMNS = ["uid", "kind", "community", "created_at", "text", "text_hash"]


def usable_docs(docs: Any, kinds: list[str]) -> Any:
    """The usable docs (preprocessing's ``docs``) of the given kinds with clean text: uid, kind, community,
    created_at, text, text_hash (a DataFrame sorted by uid). ``docs`` is the runner's table handle (or
    anything with its ``read``)."""
    import pandas as pd
    import pyarrow.compute as pc

    table = docs.read(columns=DOC_COLUMNS, filter=(pc.field("usable") == True)  # noqa: E712
                      & pc.field("kind").isin(list(kinds)))
    if table is None:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in DOC_COLUMNS})
    else:
        frame = table.to_pandas()
    frame["text"] = frame["text"].fillna("")
    frame = frame[frame["text"].str.len() > 0].drop_duplicates("uid")
    frame.attrs["usable_from"] = "docs.usable"
    return frame.sort_values("uid").reset_index(drop=True)


def label_docs(docs: Any, existing: Any, model: Any, model_name: str,
               cache_root: Path, run: RunInfo | None = None,
               folder: Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """doc_themes rows for every usable doc, scoring only uids not labelled by this model before: (rows as a
    DataFrame, as an Arrow table, summary). With ``run.workers`` > 1 the scoring is ``run.map``'s, on workers
    that load the model from ``folder`` (its folder in the lake)."""
    import pandas as pd

    keep = pd.DataFrame(columns=[f.name for f in DOC_THEMES_SCHEMA])
    if existing is not None and len(existing):
        same = existing[(existing["model"] == model_name) & existing["uid"].isin(docs["uid"])]
        keep = same
    new = docs[~docs["uid"].isin(set(keep["uid"]))]
    P = np.zeros((len(new), len(model.theme_ids)))
    embedding: dict[str, Any] = {}
    parallel = run is not None and run.workers > 1 and folder is not None
    # per chunk of CHUNK docs: their vectors (embedding's own progress line inside) and their scores
    with Progress(f"themes: scoring ({model_name})", total=len(new), logger=log) as progress:
        for start in range(0, len(new), CHUNK):
            part = new.iloc[start:start + CHUNK]
            if parallel:
                embedding = preload_vectors(cache_root, model, part, run=run, remember=False) or embedding
                P[start:start + CHUNK] = score_on_workers(run, folder, model, part, cache_root)
            else:
                embedding = preload_vectors(cache_root, model, part) or embedding
                P[start:start + CHUNK] = model.predict_proba(part["text"].tolist())
            progress.advance(len(part))
    with phase("themes: doc_themes table", len(new) + len(keep), logger=log):
        themes = model.themes_of(P)
        fresh = pd.DataFrame({
            "uid": new["uid"].to_numpy(), "community": new["community"].to_numpy(),
            "created_at": new["created_at"].to_numpy(), "themes": themes,
            "scores": [list(zip(model.theme_ids, row.astype(np.float32).tolist())) for row in P],
            "model": model_name})
        if len(keep):
            keep = keep.assign(scores=[list(s.items()) if isinstance(s, dict) else list(s) for s in keep["scores"]])
            keep = keep.assign(themes=[list(t) for t in keep["themes"]])
        combined = pd.concat([keep, fresh], ignore_index=True) if len(keep) else fresh
        combined = combined.sort_values("uid").reset_index(drop=True)
        table = pa.Table.from_pandas(combined[[f.name for f in DOC_THEMES_SCHEMA]], schema=DOC_THEMES_SCHEMA,
                                     preserve_index=False)
    summary = {"docs": int(len(combined)), "scored_now": int(len(new)), "kept": int(len(keep)),
               "usable_from": docs.attrs.get("usable_from"),
               "dropped": 0 if existing is None else int(len(existing) - len(keep)), "embedding": embedding}
    return combined, table, summary


def preload_vectors(cache_root: Path, model: Any, docs: Any, *, run: RunInfo | None = None,
                    remember: bool = True) -> dict[str, Any] | None:
    """For a model on an embedding backend: vectors of these docs from (or into) the lake's shared cache
    (``cache_root``: the ``cache/embeddings`` artefact, which the topic stage uses by default), handed to the
    model's embedder so that scoring does not encode them again (``remember``; workers read them from the cache
    instead). With ``run``, missing vectors are encoded by ``run.map``; this process alone writes the cache."""
    spec = model.embedding_spec()
    if spec is None or "text_hash" not in docs or docs["text_hash"].isna().any():
        return None
    from edumine.models.embeddings.backends import embed_with_cache, make_embedder
    from edumine.models.themes.embed import backend_embedder

    name, params, cache_dir = spec
    texts = docs["text"].tolist()
    workers = {} if run is None else {"map": run.map, "workers": run.workers}
    vectors, info = embed_with_cache(make_embedder(name, **params), cache_root, docs["uid"].tolist(),
                                     docs["text_hash"].tolist(), texts, **workers)
    if not remember:
        return {**info, "cache": str(Path(cache_root) / info["key"]), "text_column": "docs.text"}
    embedder = backend_embedder(cache_dir, name, params)
    embedder.forget()
    embedder.remember(texts, vectors)
    return {**info, "cache": str(Path(cache_root) / info["key"]), "text_column": "docs.text"}


def score_on_workers(run: RunInfo, folder: Path, model: Any, docs: Any, cache_root: Path) -> np.ndarray:
    """``model.predict_proba`` of these docs' texts, in slices on ``run.map``'s workers (rows in order)."""
    step = -(-len(docs) // run.workers) or 1  # equal slices: one per worker
    items = [{"folder": str(folder), "cache_dir": str(model.cache_dir) if model.cache_dir else None,
              "cache_root": str(cache_root), "uids": docs["uid"].iloc[start:start + step].tolist(),
              "hashes": docs["text_hash"].iloc[start:start + step].tolist() if "text_hash" in docs else None,
              "texts": docs["text"].iloc[start:start + step].tolist()} for start in range(0, len(docs), step)]
    parts = run.map(score_slice, items, name="themes")
    return np.concatenate(parts) if parts else np.zeros((0, len(model.theme_ids)))


_WORKER_MODELS: dict[str, Any] = {}


def score_slice(folder: str, cache_dir: str | None, cache_root: str, uids: list[str], hashes: list[str] | None,
                texts: list[str]) -> np.ndarray:
    """A map step (run on a worker): theme probabilities of ``texts`` by the model saved in ``folder`` (loaded
    once per worker process, checksums verified), with the docs' vectors read from the lake's embedding cache
    (``cache_root``, filled by the flow's process before) for a model on an embedding backend."""
    from edumine.models.themes.classifier import load_verified

    model = _WORKER_MODELS.get(folder)
    if model is None:
        model = load_verified(Path(folder))
        if cache_dir:
            model.use_cache_dir(cache_dir)
        _WORKER_MODELS.clear()  # a long-lived worker keeps the latest model only
        _WORKER_MODELS[folder] = model
    spec = model.embedding_spec()
    if spec is not None and hashes is not None and all(h is not None for h in hashes):
        from edumine.models.embeddings.backends import make_embedder, open_cache
        from edumine.models.themes.embed import backend_embedder

        name, params, text_cache = spec
        cache = open_cache(make_embedder(name, **params), Path(cache_root))
        vectors, missing = cache.get(uids, hashes)
        if vectors is not None and not missing.any():
            embedder = backend_embedder(text_cache, name, params)
            embedder.forget()
            embedder.remember(texts, vectors)
    return model.predict_proba(texts)


def score_matrix(doc_themes: Any, theme_ids: list[str]) -> np.ndarray:
    """Per-doc probabilities (docs x themes) from doc_themes' ``scores`` maps."""
    out = np.zeros((len(doc_themes), len(theme_ids)))
    index = {t: i for i, t in enumerate(theme_ids)}
    for row, scores in enumerate(doc_themes["scores"]):
        for theme, value in (scores.items() if isinstance(scores, dict) else scores):
            if theme in index:
                out[row, index[theme]] = value
    return out


def theme_prevalence(doc_themes: Any, theme_ids: list[str], labels: dict[str, str], unit: str, *,
                     prevalence: Any = None, f1: dict[str, float] | None = None, floor: float = 0.5,
                     level: float = 0.95, seed: int = 0, model_name: str = "") -> pa.Table:
    """Each theme's share of usable docs per window and community: a quantification estimate (``method``)
    with an interval over docs and the classifier's measured error, and the theme's CV F1 and reliability."""
    import pandas as pd

    from edumine.models.themes.calibration import estimate
    from edumine.windows import window_label, window_starts

    if len(doc_themes) == 0:
        return pa.Table.from_pandas(pd.DataFrame({c: pd.Series(dtype=t) for c, t in PREVALENCE_TYPES.items()}),
                                    preserve_index=False)
    from edumine.models.themes.calibration import ZERO_SHOT, PrevalenceModel

    prevalence = prevalence or PrevalenceModel(method=ZERO_SHOT)
    f1 = f1 or {}
    frame = doc_themes[["community", "created_at", "themes"]].reset_index(drop=True)
    with phase("themes: windows, decisions and scores per doc", len(frame), logger=log):
        starts = window_starts(pd.to_datetime(frame["created_at"], utc=True).dt.tz_localize(None), unit)
        frame["window_start"] = np.asarray(starts)
        decisions = np.array([[t in set(ts) for t in theme_ids] for ts in frame["themes"]], dtype=bool)
        P = score_matrix(doc_themes.reset_index(drop=True), theme_ids)
    rows = []
    groups = frame.groupby(["window_start", "community"], sort=True)
    with Progress("themes: prevalence per window and community", total=groups.ngroups, unit="groups",
                  logger=log) as progress:
        for number, ((start, community), group) in enumerate(groups):
            index = group.index.to_numpy()
            day = pd.Timestamp(start).date()
            share, low, high = estimate(P[index], decisions[index], prevalence, level=level, seed=seed + number)
            counted = decisions[index].sum(axis=0)
            for column, theme in enumerate(theme_ids):
                score = f1.get(theme, float("nan"))
                rows.append({"window_start": day, "window_label": window_label(day, unit),
                             "community": community, "theme": theme, "theme_label": labels.get(theme, theme),
                             "docs": len(index), "theme_docs": int(counted[column]), "share": float(share[column]),
                             "share_low": float(low[column]), "share_high": float(high[column]),
                             "model": model_name, "method": prevalence.method, "f1": score,
                             "reliable": bool(prevalence.method != ZERO_SHOT and score == score and score >= floor)})
            progress.advance(1)
    table = pd.DataFrame(rows).sort_values(["window_start", "community", "theme"]).reset_index(drop=True)
    table = table.astype({"docs": "int64", "theme_docs": "int64", "f1": "float64", "reliable": "bool"})
    return pa.Table.from_pandas(table[PREVALENCE_COLUMNS], preserve_index=False)


def run_themes(inputs: Any, settings: ThemesConfig, run: RunInfo) -> StageResult:
    from edumine.models.themes.classifier import load_or_train

    settings = settings.with_stores(inputs["models/themes"].path, inputs["cache/texts"].path)
    model, folder, trained = load_or_train(settings)
    existing = inputs["doc_themes"].read()
    combined, doc_themes, summary = label_docs(usable_docs(inputs["docs"], settings.kinds),
                                               None if existing is None else existing.to_pandas(),
                                               model, folder.name, inputs["cache/embeddings"].path,
                                               run=run, folder=folder)
    labels = {t.id: t.display for t in model.codebook.themes}
    evaluation = model.info.get("evaluation") or {}
    f1 = {t: m["f1"] for t, m in evaluation.get("per_theme", {}).items()}
    estimator = model.prevalence_model(settings.prevalence_method)
    prevalence = theme_prevalence(combined, model.theme_ids, labels, run.windows_unit, prevalence=estimator,
                                  f1=f1, floor=settings.reliability_floor, level=settings.interval_level,
                                  seed=settings.seed, model_name=folder.name)
    scores = {
        "model": folder.name, "cv_macro_f1": evaluation.get("macro_f1"), "cv_micro_f1": evaluation.get("micro_f1"),
        "cv_per_theme_f1": {t: m["f1"] for t, m in evaluation.get("per_theme", {}).items()},
        "n_labelled": model.info.get("n_labelled"), "method": estimator.method, "calibrated": model.calibrated,
        "unreliable": sorted(t for t in model.theme_ids if not f1.get(t, 0.0) >= settings.reliability_floor)}
    with phase("themes: overall shares", len(combined), logger=log):
        shares = {t: round(float(np.mean([t in set(ts) for ts in combined["themes"]])), 4) if len(combined) else 0.0
                  for t in model.theme_ids}
    return StageResult(
        outputs={"doc_themes": Output(doc_themes), "theme_prevalence": Output(prevalence)},
        summary={**summary, "model": folder.name, "model_card": str(folder / "model_card.md"),
                 "trained_now": trained, "prevalence_rows": prevalence.num_rows, "share_overall": shares,
                 "method": estimator.method},
        scores=scores)


STAGE = registry.stages.register("themes")(
    Stage("themes", run=run_themes, inputs=("docs",), outputs=("doc_themes", "theme_prevalence"),
          caches=("models/themes", "cache/texts", "cache/embeddings"), section="themes",
          description="SDL themes per doc and their prevalence per window"))
