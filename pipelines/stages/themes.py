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
  Incremental: each (window, community) group's bootstrap is seeded by its key, so its rows depend on its own
  docs only; groups whose docs did not change since the last run keep their rows
  (``models/themes/prevalence.py``).
- ``theme_windows``: per group its docs, a fingerprint of their uids and the basis (model and settings): the
  state the next run compares with.

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


CHUNK = 20_000


DOC_COLUMNS = ["uid", "kind", "community", "created_at", "text", "text_hash"]
USABLE_FROM = "docs.usable"


def usable_doc_table(docs: Any, kinds: list[str]) -> pa.Table:
    """The usable docs (preprocessing's ``docs``) of the given kinds with clean text, one per uid (its first
    stored row), sorted by uid: uid, kind, community, created_at, text, text_hash as Arrow (no Python object per
    doc: a nightly run hands pandas only the new docs)."""
    import pyarrow.compute as pc

    from edumine.tables import DOCS

    table = docs.read(columns=DOC_COLUMNS, filter=(pc.field("usable") == True)  # noqa: E712
                      & pc.field("kind").isin(list(kinds)))
    if table is None:
        return pa.schema([DOCS.field(c) for c in DOC_COLUMNS]).empty_table()
    text = pc.fill_null(table.column("text"), "")
    table = table.set_column(table.schema.get_field_index("text"), "text", text)
    table = table.filter(pc.greater(pc.utf8_length(text), 0))
    first = table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64))) \
        .group_by("uid", use_threads=False).aggregate([("_row", "min")]).column("_row_min")
    if len(first) < table.num_rows:  # duplicates: keep each uid's first row
        table = table.take(first)
    return table.take(pc.sort_indices(table, sort_keys=[("uid", "ascending")]))


def usable_docs(docs: Any, kinds: list[str]) -> Any:
    """``usable_doc_table`` as a DataFrame (``attrs["usable_from"]`` says where usability came from)."""
    frame = usable_doc_table(docs, kinds).to_pandas()
    frame.attrs["usable_from"] = USABLE_FROM
    return frame


def label_docs(docs: pa.Table, existing: pa.Table | None, model: Any, model_name: str,
               cache_root: Path, run: RunInfo | None = None,
               folder: Path | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """doc_themes rows (DOC_THEMES_SCHEMA, sorted by uid) for every doc of ``docs`` (``usable_doc_table``),
    scoring only uids not labelled by this model before: the kept rows stay Arrow, only the new docs are
    handed to pandas and the model. With ``run.workers`` > 1 the scoring is ``run.map``'s, on workers that load
    the model from ``folder`` (its folder in the lake)."""
    import pyarrow.compute as pc

    names = [f.name for f in DOC_THEMES_SCHEMA]
    keep = DOC_THEMES_SCHEMA.empty_table()
    if existing is not None and existing.num_rows:
        same = pc.and_(pc.equal(existing.column("model"), model_name),
                       pc.is_in(existing.column("uid"), value_set=docs.column("uid").combine_chunks()))
        keep = existing.filter(same).select(names).cast(DOC_THEMES_SCHEMA)
    new_table = docs.filter(pc.invert(pc.is_in(docs.column("uid"), value_set=keep.column("uid").combine_chunks())))
    new = new_table.select([c for c in DOC_COLUMNS if c in new_table.column_names]).to_pandas()
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
    with phase("themes: doc_themes table", len(new) + keep.num_rows, logger=log):
        table = pa.concat_tables([keep, fresh_rows(new_table, P, model, model_name)])
        table = table.take(pc.sort_indices(table, sort_keys=[("uid", "ascending")]))
    summary = {"docs": table.num_rows, "scored_now": len(new), "kept": keep.num_rows, "usable_from": USABLE_FROM,
               "dropped": 0 if existing is None else int(existing.num_rows - keep.num_rows), "embedding": embedding}
    return table, summary


def fresh_rows(docs: pa.Table, P: np.ndarray, model: Any, model_name: str) -> pa.Table:
    """doc_themes rows of newly scored docs: themes (``model.decide``, in theme order) and scores maps."""
    n, k, ids = len(P), len(model.theme_ids), pa.array(model.theme_ids, pa.string())
    decisions = np.asarray(model.decide(P), dtype=bool).reshape(n, k)
    _, columns = np.nonzero(decisions)  # row-major: each doc's themes in theme order
    themes = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(decisions.sum(axis=1))]), pa.int32()),
                                      ids.take(pa.array(columns, pa.int64())))
    scores = pa.MapArray.from_arrays(pa.array(np.arange(0, n * k + 1, k), pa.int32()),
                                     ids.take(pa.array(np.tile(np.arange(k, dtype=np.int64), n))),
                                     pa.array(P.astype(np.float32).ravel(), pa.float32()))
    return pa.table({"uid": docs.column("uid"), "community": docs.column("community"),
                     "created_at": docs.column("created_at"), "themes": themes, "scores": scores,
                     "model": pa.repeat(pa.scalar(model_name, pa.string()), n)}).cast(DOC_THEMES_SCHEMA)


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


def as_doc_themes(doc_themes: Any) -> pa.Table:
    """doc_themes as Arrow: a table as it is, or a DataFrame (scores as maps or lists of (theme, p) pairs)."""
    if isinstance(doc_themes, pa.Table):
        return doc_themes
    frame = doc_themes.copy()
    frame["scores"] = [list(s.items()) if isinstance(s, dict) else list(s) for s in frame["scores"]]
    frame["themes"] = [list(t) for t in frame["themes"]]
    frame["model"] = frame["model"] if "model" in frame else ""
    frame["uid"] = frame["uid"] if "uid" in frame else [str(i) for i in range(len(frame))]
    return pa.Table.from_pandas(frame[[f.name for f in DOC_THEMES_SCHEMA]], schema=DOC_THEMES_SCHEMA,
                                preserve_index=False)


def theme_prevalence(doc_themes: Any, theme_ids: list[str], labels: dict[str, str], unit: str, *,
                     prevalence: Any = None, f1: dict[str, float] | None = None, floor: float = 0.5,
                     level: float = 0.95, seed: int = 0, model_name: str = "") -> pa.Table:
    """Each theme's share of usable docs per window and community: a quantification estimate (``method``)
    with an interval over docs and the classifier's measured error, and the theme's CV F1 and reliability.
    Every group is computed here; the stage recomputes only the changed ones (``prevalence_update``)."""
    from edumine.models.themes.prevalence import doc_groups, merge_rows, prevalence_rows
    from edumine.tables import THEME_PREVALENCE

    if len(doc_themes) == 0:
        return THEME_PREVALENCE.empty_table()
    from edumine.models.themes.calibration import ZERO_SHOT, PrevalenceModel

    table = as_doc_themes(doc_themes)
    groups = doc_groups(table, unit)
    rows = prevalence_rows(table, groups, np.arange(len(groups.table)), theme_ids, labels, unit,
                           prevalence=prevalence or PrevalenceModel(method=ZERO_SHOT), f1=f1 or {}, floor=floor,
                           level=level, seed=seed, model_name=model_name)
    return merge_rows(None, rows, groups.table.iloc[:0])


def prevalence_update(inputs: Any, doc_themes: pa.Table, theme_ids: list[str], labels: dict[str, str], unit: str,
                      *, prevalence: Any, f1: dict[str, float], floor: float, level: float, seed: int,
                      model_name: str) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """(theme_prevalence, theme_windows, summary): the groups whose docs changed since the last run (or all,
    with a new model or settings, or without the last run's state) are computed, the others' rows kept."""
    from edumine.models.themes.prevalence import (doc_groups, group_fingerprints, merge_rows, plan_groups,
                                                  prevalence_basis, prevalence_rows)
    from edumine.tables import THEME_WINDOWS

    basis = prevalence_basis(model_name=model_name, method=prevalence.method, labels=labels, f1=f1, floor=floor,
                             level=level, seed=seed, unit=unit)
    groups = doc_groups(doc_themes, unit)
    state = group_fingerprints(doc_themes, groups, basis)
    stored = inputs["theme_windows"].read() if inputs["theme_prevalence"].exists() else None
    old_rows = inputs["theme_prevalence"].read() if stored is not None and stored.num_rows else None
    plan = plan_groups(None if stored is None else stored.to_pandas(), state, old_rows)
    fresh = prevalence_rows(doc_themes, groups, plan.recompute, theme_ids, labels, unit, prevalence=prevalence,
                            f1=f1, floor=floor, level=level, seed=seed, model_name=model_name)
    table = merge_rows(old_rows, fresh, plan.keep)
    windows = pa.Table.from_pandas(state.assign(window_start=state["window_start"].dt.date), schema=THEME_WINDOWS,
                                   preserve_index=False)
    return table, windows, {"groups": len(state), "groups_recomputed": len(plan.recompute),
                            "groups_kept": len(plan.keep), "plan": plan.reason}


def run_themes(inputs: Any, settings: ThemesConfig, run: RunInfo) -> StageResult:
    import pyarrow.compute as pc

    from edumine.models.themes.classifier import load_or_train

    settings = settings.with_stores(inputs["models/themes"].path, inputs["cache/texts"].path)
    model, folder, trained = load_or_train(settings)
    doc_themes, summary = label_docs(usable_doc_table(inputs["docs"], settings.kinds), inputs["doc_themes"].read(),
                                     model, folder.name, inputs["cache/embeddings"].path, run=run, folder=folder)
    labels = {t.id: t.display for t in model.codebook.themes}
    evaluation = model.info.get("evaluation") or {}
    f1 = {t: m["f1"] for t, m in evaluation.get("per_theme", {}).items()}
    estimator = model.prevalence_model(settings.prevalence_method)
    prevalence, windows, plan = prevalence_update(
        inputs, doc_themes, model.theme_ids, labels, run.windows_unit, prevalence=estimator, f1=f1,
        floor=settings.reliability_floor, level=settings.interval_level, seed=settings.seed,
        model_name=folder.name)
    scores = {
        "model": folder.name, "cv_macro_f1": evaluation.get("macro_f1"), "cv_micro_f1": evaluation.get("micro_f1"),
        "cv_per_theme_f1": {t: m["f1"] for t, m in evaluation.get("per_theme", {}).items()},
        "n_labelled": model.info.get("n_labelled"), "method": estimator.method, "calibrated": model.calibrated,
        "unreliable": sorted(t for t in model.theme_ids if not f1.get(t, 0.0) >= settings.reliability_floor)}
    with phase("themes: overall shares", doc_themes.num_rows, logger=log):
        flagged = pc.value_counts(pc.list_flatten(doc_themes.column("themes"))).to_pylist() \
            if doc_themes.num_rows else []
        counts = {item["values"]: item["counts"] for item in flagged}
        shares = {t: round(counts.get(t, 0) / doc_themes.num_rows, 4) if doc_themes.num_rows else 0.0
                  for t in model.theme_ids}
    return StageResult(
        outputs={"doc_themes": Output(doc_themes), "theme_prevalence": Output(prevalence),
                 "theme_windows": Output(windows)},
        summary={**summary, "model": folder.name, "model_card": str(folder / "model_card.md"),
                 "trained_now": trained, "prevalence_rows": prevalence.num_rows, "prevalence": plan,
                 "share_overall": shares, "method": estimator.method},
        scores=scores)


STAGE = registry.stages.register("themes")(
    Stage("themes", run=run_themes, inputs=("docs",), outputs=("doc_themes", "theme_prevalence", "theme_windows"),
          caches=("models/themes", "cache/texts", "cache/embeddings"), section="themes",
          description="SDL themes per doc and their prevalence per window"))
