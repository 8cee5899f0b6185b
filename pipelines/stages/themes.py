"""Theme stage (order 50): label every usable doc with SDL themes, and theme prevalence per window.

Reads ``posts`` (and the ``docs`` table's ``usable`` flag when preprocessing wrote one; otherwise posts
that are not deleted and whose cleaned text has ``themes.min_words`` words are usable). Writes:

- ``doc_themes/part-0.parquet``: uid, community, created_at, themes (list), scores (map theme -> p), model.
  Incremental: docs already labelled by the same model keep their row; only new uids are scored.
  A new model (new labels, codebook or settings) relabels everything, so one table never mixes models.
- ``theme_prevalence/part-0.parquet``: window_start, window, community, theme, theme_label, docs
  (usable docs in the window), theme_docs, share, share_low, share_high (seeded bootstrap interval), model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from edumine import registry
from edumine.models.themes_config import ThemesConfig
from edumine.stages import Stage

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
                    "share_low": "float64", "share_high": "float64", "model": "object"}


def usable_docs(lake: Any, settings: ThemesConfig) -> Any:
    """Usable docs of the configured kinds: uid, community, created_at, title, body, text (a DataFrame)."""
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from edumine.models.clean import clean_text

    columns = ["uid", "kind", "community", "created_at", "title", "body", "is_deleted"]
    posts = lake.read_posts(columns=columns, filter=pc.field("kind").isin(settings.kinds))
    frame = posts.to_pandas()
    frame = frame[~frame["is_deleted"].fillna(False).astype(bool)]
    titles = [t if isinstance(t, str) else None for t in frame["title"]]
    bodies = [b if isinstance(b, str) else None for b in frame["body"]]
    frame["text"] = [clean_text(t, b) for t, b in zip(titles, bodies)]
    frame["title"] = pd.Series(titles, index=frame.index, dtype=object)
    frame["body"] = pd.Series(bodies, index=frame.index, dtype=object)
    docs_dir = Path(lake.table_path("docs"))
    usable_from = "min_words"
    if docs_dir.is_dir() and any(docs_dir.rglob("*.parquet")):
        dataset = ds.dataset(docs_dir, format="parquet")
        if "usable" in dataset.schema.names and "uid" in dataset.schema.names:
            flags = dataset.to_table(columns=["uid", "usable"]).to_pandas()
            usable = set(flags.loc[flags["usable"].fillna(False).astype(bool), "uid"])
            frame = frame[frame["uid"].isin(usable)]
            usable_from = "docs.usable"
    if usable_from == "min_words":
        frame = frame[frame["text"].str.split().str.len().fillna(0) >= settings.min_words]
    frame = frame[frame["text"].str.len() > 0].drop_duplicates("uid")
    frame.attrs["usable_from"] = usable_from
    return frame.sort_values("uid").reset_index(drop=True)


def _read_existing(path: Path) -> Any:
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        log.warning("rebuilding unreadable %s (%s)", path, exc)
        return None


def label_docs(lake: Any, settings: ThemesConfig, model: Any, model_name: str) -> tuple[Any, dict[str, Any]]:
    """doc_themes rows for every usable doc, scoring only uids not labelled by this model before."""
    import pandas as pd

    from edumine.lake import write_parquet_atomic

    docs = usable_docs(lake, settings)
    target = Path(lake.table_path("doc_themes")) / "part-0.parquet"
    existing = _read_existing(target)
    keep = pd.DataFrame(columns=[f.name for f in DOC_THEMES_SCHEMA])
    if existing is not None and len(existing):
        same = existing[(existing["model"] == model_name) & existing["uid"].isin(docs["uid"])]
        keep = same
    new = docs[~docs["uid"].isin(set(keep["uid"]))]
    P = model.predict_proba(new["text"].tolist()) if len(new) else np.zeros((0, len(model.theme_ids)))
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
    write_parquet_atomic(table, target)
    summary = {"docs": int(len(combined)), "scored_now": int(len(new)), "kept": int(len(keep)),
               "usable_from": docs.attrs.get("usable_from"),
               "dropped": 0 if existing is None else int(len(existing) - len(keep))}
    return combined, summary


def theme_prevalence(doc_themes: Any, theme_ids: list[str], labels: dict[str, str], unit: str, *,
                     level: float = 0.95, seed: int = 0, model_name: str = "") -> pa.Table:
    """Share of usable docs with each theme per window and community, with a bootstrap interval."""
    import pandas as pd

    from edumine.stats import bootstrap_share_interval
    from edumine.windows import window_label, window_starts

    columns = ["window_start", "window_label", "community", "theme", "theme_label", "docs", "theme_docs", "share",
               "share_low", "share_high", "model"]
    if len(doc_themes) == 0:
        return pa.Table.from_pandas(pd.DataFrame({c: pd.Series(dtype=PREVALENCE_TYPES[c]) for c in columns}),
                                    preserve_index=False)
    frame = doc_themes[["community", "created_at", "themes"]].copy()
    frame["window_start"] = window_starts(pd.to_datetime(frame["created_at"], utc=True).dt.tz_localize(None), unit)
    totals = frame.groupby(["window_start", "community"]).size()
    onehot = pd.DataFrame({t: [t in set(ts) for ts in frame["themes"]] for t in theme_ids}, index=frame.index)
    hits = pd.concat([frame[["window_start", "community"]], onehot], axis=1).groupby(["window_start", "community"]).sum()
    rows = hits.stack().rename("theme_docs").reset_index().rename(columns={"level_2": "theme"})
    rows["docs"] = totals.reindex(pd.MultiIndex.from_frame(rows[["window_start", "community"]])).to_numpy()
    low, high = bootstrap_share_interval(rows["theme_docs"].to_numpy(), rows["docs"].to_numpy(), level=level, seed=seed)
    rows["share"] = rows["theme_docs"] / rows["docs"]
    rows["share_low"], rows["share_high"] = low, high
    starts = pd.to_datetime(rows["window_start"]).dt.date
    rows["window_start"] = starts
    rows["window_label"] = [window_label(s, unit) for s in starts]
    rows["theme_label"] = rows["theme"].map(labels)
    rows["model"] = model_name
    rows = rows.sort_values(["window_start", "community", "theme"]).reset_index(drop=True)
    rows["docs"] = rows["docs"].astype("int64")
    rows["theme_docs"] = rows["theme_docs"].astype("int64")
    return pa.Table.from_pandas(rows[columns], preserve_index=False)


def run_themes(ctx: Any) -> dict[str, Any]:
    from edumine.faults import kill_point
    from edumine.lake import write_parquet_atomic
    from edumine.models.themes import load_or_train

    settings: ThemesConfig = ctx.config.themes
    model, folder, trained = load_or_train(settings)
    combined, summary = label_docs(ctx.lake, settings, model, folder.name)
    labels = {t.id: t.display for t in model.codebook.themes}
    prevalence = theme_prevalence(combined, model.theme_ids, labels, ctx.config.windows.unit,
                                  level=settings.interval_level, seed=settings.seed, model_name=folder.name)
    kill_point("themes.write")
    write_parquet_atomic(prevalence, Path(ctx.lake.table_path("theme_prevalence")) / "part-0.parquet")
    evaluation = model.info.get("evaluation") or {}
    ctx.scores["themes"] = {
        "model": folder.name, "cv_macro_f1": evaluation.get("macro_f1"), "cv_micro_f1": evaluation.get("micro_f1"),
        "cv_per_theme_f1": {t: m["f1"] for t, m in evaluation.get("per_theme", {}).items()},
        "n_labelled": model.info.get("n_labelled")}
    shares = {t: round(float(np.mean([t in set(ts) for ts in combined["themes"]])), 4) if len(combined) else 0.0
              for t in model.theme_ids}
    return {**summary, "model": folder.name, "model_card": str(folder / "model_card.md"), "trained_now": trained,
            "prevalence_rows": prevalence.num_rows, "share_overall": shares}


STAGE = registry.stages.register("themes")(
    Stage("themes", run=run_themes, inputs=("posts",), optional_inputs=("docs",),
          outputs=("doc_themes", "theme_prevalence"), section="themes",
          description="SDL themes per doc and their prevalence per window"))
