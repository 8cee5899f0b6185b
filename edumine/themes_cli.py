"""``edumine themes ...``: predict SDL themes for any text, train, and the labelling loop.

Mounted in ``edumine.cli`` with ``app.add_typer(themes_app, name="themes")``. Settings come from the
``themes`` section of ``--config`` (or its defaults, resolved against the working directory).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from edumine.errors import EdumineError

themes_app = typer.Typer(help="SDL themes: predict, train, and the labelling loop (export, import).",
                         no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = Console(stderr=True, width=120)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; its `themes` section is used")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override a config key: --set themes.seed=1")]


def _setup(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpcore", "urllib3", "numba", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(2)


def _settings(config: Path | None, overrides: list[str] | None) -> tuple[Any, Any]:
    """(themes settings, full config or None)."""
    from edumine.models.themes.config import ThemesConfig

    if config is None:
        if overrides:
            raise EdumineError("--set needs --config")
        return ThemesConfig(), None
    from edumine.config import load_config

    full = load_config(config, overrides or [])
    lake = Path(full.lake)  # type: ignore[attr-defined]
    return full.themes.with_stores(lake / "models" / "themes", lake / "cache" / "texts"), full  # type: ignore[attr-defined]


def read_input(path: Path) -> Any:
    """A DataFrame with ``id`` and ``text`` from CSV, JSONL or Parquet (``text`` or ``title`` + ``body``)."""
    import pandas as pd

    from edumine.models.text.clean import clean_text

    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() in (".gz", ".zst") else path.suffix.lower()
    if not path.is_file():
        raise EdumineError(f"input not found: {path}")
    try:
        if suffix.startswith(".csv"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix.startswith((".jsonl", ".ndjson", ".json")):
            frame = pd.read_json(path, lines=True, dtype=False)
        elif suffix.startswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        else:
            raise EdumineError(f"cannot tell the format of {path}: use .csv, .jsonl (or .ndjson) or .parquet")
    except (ValueError, OSError) as exc:
        raise EdumineError(f"cannot read {path}: {exc}") from None
    if "id" not in frame.columns:
        raise EdumineError(f"{path} has no `id` column (columns: {', '.join(map(str, frame.columns))})")
    if "text" in frame.columns:
        texts = [clean_text(None, t if isinstance(t, str) else None) for t in frame["text"]]
    elif "title" in frame.columns or "body" in frame.columns:
        titles = frame["title"] if "title" in frame.columns else [None] * len(frame)
        bodies = frame["body"] if "body" in frame.columns else [None] * len(frame)
        texts = [clean_text(t if isinstance(t, str) else None, b if isinstance(b, str) else None)
                 for t, b in zip(titles, bodies)]
    else:
        raise EdumineError(f"{path} needs a `text` column, or `title` and `body` columns")
    return pd.DataFrame({"id": frame["id"].tolist(), "text": texts})


@themes_app.command()
def predict(
    input: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet with `id` and `text` (or `title` + `body`)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output JSONL: {id, themes, scores, calibrated} per line")],
    config: ConfigOpt = None, set_: SetOpt = None,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Themes and per-theme scores for every row of INPUT (trains the model first if needed). The scores are
    calibrated probabilities (`"calibrated": true`) unless the model was trained with `calibration: none` or
    is zero-shot: then they only rank posts."""
    _setup(verbose)
    try:
        from edumine.models.themes.classifier import load_or_train, predict_records

        settings, _ = _settings(config, set_)
        frame = read_input(input)
        model, folder, _ = load_or_train(settings)
        empty = frame["text"].str.len() == 0
        lines = predict_records(model, frame.loc[~empty, "text"].tolist(), frame.loc[~empty, "id"].tolist())
        by_row = dict(zip(frame.index[~empty], lines))
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            for index, identifier in zip(frame.index, frame["id"]):
                line = by_row.get(index) or {"id": identifier, "themes": [], "scores": {}, "skipped": "no text"}
                handle.write(json.dumps(_plain(line), ensure_ascii=False) + "\n")
    except EdumineError as exc:
        _fail(exc)
        return
    skipped = int(empty.sum())
    kind = "calibrated probabilities" if model.calibrated else "uncalibrated scores (rank posts; not probabilities)"
    console.print(f"{len(frame) - skipped:,} row(s) labelled by {folder.name} ({kind}) -> {out}"
                  + (f"; {skipped:,} without text (written with no themes and \"skipped\")" if skipped else ""))


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@themes_app.command()
def train(config: ConfigOpt = None, set_: SetOpt = None,
          retrain: bool = typer.Option(False, "--retrain", help="train even if a model for these labels exists"),
          verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Train (or load the cached) theme model and print its cross-validated scores and model card."""
    _setup(verbose)
    try:
        from edumine.models.themes.classifier import load_or_train

        settings, _ = _settings(config, set_)
        model, folder, trained = load_or_train(settings, retrain=retrain)
    except EdumineError as exc:
        _fail(exc)
        return
    evaluation = model.info.get("evaluation") or {}
    out = Console(width=200)
    out.print(f"model:      {folder} ({'trained now' if trained else 'cached'})")
    out.print(f"model card: {folder / 'model_card.md'}")
    if evaluation:
        out.print(f"nested CV macro-F1 {evaluation['macro_f1']:.3f}, micro-F1 {evaluation['micro_f1']:.3f} on "
                  f"{model.info['n_labelled']} labelled posts")
        floor = settings.reliability_floor
        for theme, m in evaluation["per_theme"].items():
            flag = "" if m["f1"] >= floor else f"  unreliable (F1 < {floor})"
            out.print(f"  {theme:30s} n={m['support']:4d}  P {m['precision']:.2f}  R {m['recall']:.2f}  F1 {m['f1']:.2f}"
                      + flag)
        calibration = evaluation.get("calibration") or {}
        if calibration:
            out.print(f"calibration {model.info.get('calibration')}: mean Brier {calibration['brier_mean']:.4f}, "
                      f"mean ECE {calibration['ece_mean']:.4f}; prevalence method "
                      f"{model.prevalence_model(settings.prevalence_method).method}")
    elif model.info.get("zero_shot"):
        out.print("zero-shot model from the codebook text (no labels): scores are not probabilities; label posts "
                  "with `edumine themes export-for-labelling` and `import-labels`")


def _lake_and_settings(config: Path | None, lake: Path | None, overrides: list[str] | None) -> tuple[Any, Any, str]:
    from edumine.lake import Lake

    if (config is None) == (lake is None):
        raise EdumineError("give exactly one of --config FILE or --lake DIR")
    settings, full = _settings(config, overrides)
    root = Path(full.lake) if full is not None else lake
    unit = full.windows.unit if full is not None else "semester"
    if not Lake(root).posts.is_dir():
        raise EdumineError(f"no posts in the lake {root}: run `edumine run --config FILE` first")
    return Lake(root), settings, unit


@themes_app.command("export-for-labelling")
def export_for_labelling(
    config: ConfigOpt = None, set_: SetOpt = None,
    lake: Annotated[Optional[Path], typer.Option("--lake", help="lake folder (instead of --config)")] = None,
    n: Annotated[Optional[int], typer.Option("--n", help="posts to export (default themes.export.n)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="CSV (default themes.export.path)")] = None,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write the lake posts the model is least sure about (stratified by theme and window) to a CSV with one
    blank column per codebook theme (and `no_theme`) for a person to fill in."""
    _setup(verbose)
    try:
        from edumine.models.themes.classifier import load_or_train, training_set
        from edumine.models.themes.data import label_key
        from edumine.models.themes.labelling import select_for_labelling, write_labelling_csv
        from edumine.pipelines.stages.themes import preload_vectors, usable_docs
        from edumine.windows import window_label, window_starts

        the_lake, settings, unit = _lake_and_settings(config, lake, set_)
        model, folder, _ = load_or_train(settings)
        from edumine.stage_io import TableInput

        docs = usable_docs(TableInput(the_lake, "docs"), settings.kinds)
        if docs.empty:
            raise EdumineError(f"no usable docs of kinds {settings.kinds} in the lake {the_lake.root}: run "
                               "`edumine run --config FILE` (its preprocess stage writes them) first")
        import pandas as pd
        import pyarrow.compute as pc

        posts = the_lake.read("posts", columns=["uid", "title", "body"],
                              filter=pc.field("uid").isin(docs["uid"].tolist())).to_pandas()
        posts = posts.drop_duplicates("uid").set_index("uid")
        for column in ("title", "body"):  # the label key is the raw title and body's, as the labels have it
            docs[column] = [v if isinstance(v, str) else None for v in posts[column].reindex(docs["uid"])]
        docs["key"] = [label_key(t, b) for t, b in zip(docs["title"], docs["body"])]

        starts = window_starts(pd.to_datetime(docs["created_at"], utc=True).dt.tz_localize(None), unit)
        docs["window_label"] = [window_label(pd.Timestamp(s).date(), unit) for s in starts]
        preload_vectors(the_lake.table_path("cache/embeddings"), model, docs)  # the vectors the theme (or topic) stage cached: no second pass
        P = model.predict_proba(docs["text"].tolist())
        docs["model_themes"] = [";".join(t) for t in model.themes_of(P)]
        labelled = {r["key"] for r in training_set(settings.resolved(), model.codebook)}
        selection = select_for_labelling(docs, P, model.thresholds_, model.theme_ids,
                                         n or settings.export.n, exclude_keys=labelled)
        target = out or settings.resolved().export.path
        write_labelling_csv(selection, model.codebook, target)
    except EdumineError as exc:
        _fail(exc)
        return
    console.print(f"{len(selection):,} post(s) to label -> {target} (model {folder.name}). Fill the theme columns "
                  "with 1 (or x), or `no_theme` with 1, then: edumine themes import-labels " + str(target))


@themes_app.command("import-labels")
def import_labels(
    file: Annotated[Path, typer.Argument(help="a CSV from export-for-labelling with theme columns filled in")],
    config: ConfigOpt = None, set_: SetOpt = None,
    lake: Annotated[Optional[Path], typer.Option("--lake", help="lake folder to resolve uids (instead of --config)")] = None,
    replace: bool = typer.Option(False, "--replace", help="overwrite existing labels that this file contradicts"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Add a person's labels to the training set (themes.imported_labels); the next run retrains.
    Unknown ids, duplicates, conflicts and bad cells are reported; exit status 1 when any were found."""
    _setup(verbose)
    try:
        from edumine.lake import Lake
        from edumine.models.themes.codebook import load_codebook
        from edumine.models.themes.classifier import training_set
        from edumine.models.themes.labelling import import_labels as do_import
        from edumine.models.themes.labelling import lake_posts_by_id, posts_by_id

        settings, full = _settings(config, set_)
        settings = settings.resolved()
        codebook = load_codebook(settings.codebook)
        existing = training_set(settings, codebook)
        known = posts_by_id(existing)
        root = Path(full.lake) if full is not None else lake
        if root is not None and Lake(root).posts.is_dir():
            frame = Lake(root).read_posts(columns=["uid", "title", "body", "community"]).to_pandas()
            known = {**lake_posts_by_id(frame), **known}
        report = do_import(file, codebook, known_posts=known, existing=existing, store=settings.imported_labels,
                           replace=replace)
    except EdumineError as exc:
        _fail(exc)
        return
    out = Console(width=200)
    out.print(f"{report.rows} row(s) read: {report.imported} imported ({report.replaced} replacing a label), "
              f"{report.unchanged} unchanged, {report.unlabelled} left blank -> {settings.imported_labels}")
    for title, items in (("unknown ids", report.unknown_ids), ("duplicates", report.duplicates),
                         ("conflicts", report.conflicts), ("invalid rows", report.invalid)):
        if items:
            out.print(f"{title} ({len(items)}):")
            for item in items[:50]:
                out.print(f"  - {item}", highlight=False)
    if report.imported:
        out.print("the next `edumine run` (or `edumine themes train`) retrains on these labels")
    if report.problems:
        raise typer.Exit(1)
