"""The human-in-the-loop: export the posts the model is least sure about, import a person's labels.

Export: uncertainty sampling stratified by theme and window. A post's uncertainty is how close its most
doubtful theme score is to that theme's threshold (in log-odds); each post is filed under that theme and
its window, and strata are visited in turn, taking each stratum's most uncertain post, so that every theme
and every period gets labelling effort. The CSV has the codebook's columns (one per theme, blank) plus
``no_theme``; a person writes 1 (or x) for each theme that applies, or 1 under ``no_theme``.

Import: every problem is reported (unknown ids, duplicates, conflicts, bad cells, a different codebook);
the valid rows are merged into the imported-labels JSONL, which the next run trains on.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edumine.errors import EdumineError
from edumine.models.themes.codebook import Codebook
from edumine.models.themes.data import label_key, read_jsonl, text_or_none

NO_THEME = "no_theme"
INFO_COLUMNS = ["uid", "key", "window_label", "community", "created_at", "uncertain_theme", "uncertainty",
                "model_themes", "title", "text"]
YES = {"1", "x", "y", "yes", "true", "t"}
NO = {"0", "n", "no", "false", "f", "-"}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def uncertainty(P: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per post: (distance in log-odds of the most doubtful theme from its threshold, that theme's index)."""
    margins = np.abs(_logit(P) - _logit(np.clip(thresholds, 0.0, 1.0)))
    theme = margins.argmin(axis=1)
    return margins[np.arange(len(P)), theme], theme


def select_for_labelling(docs: pd.DataFrame, P: np.ndarray, thresholds: np.ndarray, theme_ids: Sequence[str],
                         n: int, exclude_keys: set[str] | None = None) -> pd.DataFrame:
    """The ``n`` posts to label next: round-robin over (theme, window) strata, most uncertain first.

    ``docs`` needs columns uid, key, window, title, text (and whatever else should reach the CSV)."""
    margin, theme = uncertainty(P, np.asarray(thresholds))
    frame = docs.reset_index(drop=True).copy()
    frame["uncertainty"] = np.round(-margin, 4)  # higher = less sure
    frame["uncertain_theme"] = [theme_ids[t] for t in theme]
    frame["_margin"] = margin
    if exclude_keys:
        frame = frame[~frame["key"].isin(exclude_keys)]
    frame = frame.drop_duplicates("key")
    strata = {name: group.sort_values(["_margin", "uid"]).index.tolist()
              for name, group in frame.groupby(["uncertain_theme", "window_label"], sort=True)}
    # Visit strata most-uncertain-first at each round, so a short export still spans themes and windows.
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n and any(len(rows) > depth for rows in strata.values()):
        round_rows = [rows[depth] for rows in strata.values() if len(rows) > depth]
        round_rows.sort(key=lambda i: (frame.at[i, "_margin"], frame.at[i, "uid"]))
        chosen += round_rows[: n - len(chosen)]
        depth += 1
    return frame.loc[chosen].drop(columns=["_margin"]).reset_index(drop=True)


def write_labelling_csv(selection: pd.DataFrame, codebook: Codebook, path: Path) -> Path:
    """CSV for a person: information columns, then one blank column per theme and ``no_theme``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = pd.DataFrame({column: selection[column] if column in selection else "" for column in INFO_COLUMNS})
    for theme in [*codebook.ids, NO_THEME]:
        out[theme] = ""
    out["notes"] = ""
    out.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8")
    return path


@dataclass
class ImportReport:
    file: str
    rows: int = 0
    imported: int = 0
    replaced: int = 0
    unchanged: int = 0
    unlabelled: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return len(self.unknown_ids) + len(self.duplicates) + len(self.conflicts) + len(self.invalid)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "problems": self.problems}


def _cell(value: Any) -> bool | None:
    """True / False for a filled cell, None for a blank one; ValueError for anything else."""
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip().lower()
    if text in ("", "nan"):
        return None
    if text in YES or text in {"1.0"}:
        return True
    if text in NO or text in {"0.0"}:
        return False
    raise ValueError(f"cell value {value!r} (write 1 or x for yes, 0 or leave blank for no)")


def read_labelled_csv(path: Path, codebook: Codebook, report: ImportReport) -> list[dict[str, Any]]:
    """Rows a person filled in: ``{id, themes, row}``; problems go to ``report``."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise EdumineError(f"cannot read labels CSV {path}: {exc}") from None
    missing = [t for t in codebook.ids if t not in frame.columns]
    if missing:
        raise EdumineError(f"{path} lacks the codebook's column(s) {', '.join(missing)}: was it exported with a "
                           "different codebook? Export again with `edumine themes export-for-labelling`")
    if "uid" not in frame.columns and "key" not in frame.columns:
        raise EdumineError(f"{path} has neither a `uid` nor a `key` column to say which post each row labels")
    report.rows = len(frame)
    rows = []
    for number, record in enumerate(frame.to_dict("records"), start=2):
        identifier = (record.get("uid") or "").strip() or (record.get("key") or "").strip()
        if not identifier:
            report.invalid.append(f"line {number}: no uid or key")
            continue
        try:
            cells = {t: _cell(record.get(t)) for t in [*codebook.ids, NO_THEME] if t in frame.columns}
        except ValueError as exc:
            report.invalid.append(f"line {number} ({identifier}): {exc}")
            continue
        if all(v is None for v in cells.values()):
            report.unlabelled += 1
            continue
        themes = [t for t in codebook.ids if cells.get(t)]
        if cells.get(NO_THEME) and themes:
            report.invalid.append(f"line {number} ({identifier}): marked no_theme and {', '.join(themes)}")
            continue
        rows.append({"id": identifier, "key": (record.get("key") or "").strip(), "themes": themes, "line": number})
    return rows


def import_labels(path: Path, codebook: Codebook, *, known_posts: dict[str, dict], existing: list[dict],
                  store: Path, replace: bool = False) -> ImportReport:
    """Validate a filled-in CSV and merge its labels into ``store`` (JSONL).

    ``known_posts`` maps uid and key to ``{uid, key, title, body, community}`` (from the lake and the
    training set); ``existing`` are the current training labels (shipped and imported)."""
    report = ImportReport(file=str(path))
    rows = read_labelled_csv(path, codebook, report)
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        post = known_posts.get(row["id"]) or (known_posts.get(row["key"]) if row["key"] else None)
        if post is None:
            report.unknown_ids.append(f"line {row['line']}: {row['id']} is neither in the lake nor in the labels")
            continue
        by_id.setdefault(post["key"], []).append({**row, "post": post})
    current = {record["key"]: record for record in existing}
    stored = {record["key"]: record for record in read_jsonl(store)} if store.is_file() else {}
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    changed = False
    for key, items in by_id.items():
        label_sets = {tuple(item["themes"]) for item in items}
        lines = ", ".join(str(item["line"]) for item in items)
        if len(label_sets) > 1:
            report.conflicts.append(f"{items[0]['id']}: labelled differently on lines {lines}; not imported")
            continue
        if len(items) > 1:
            report.duplicates.append(f"{items[0]['id']}: on lines {lines} (same labels, imported once)")
        themes = list(items[0]["themes"])
        before = current.get(key)
        if before is not None and list(before["themes"]) == themes:
            report.unchanged += 1
            continue
        if before is not None and not replace:
            report.conflicts.append(f"{items[0]['id']}: already labelled {before['themes'] or '[no theme]'} in "
                                    f"{before.get('label_file', 'the labels')}, this file says {themes or '[no theme]'}; "
                                    "kept the existing label (use --replace to overwrite)")
            continue
        post = items[0]["post"]
        stored[key] = {"key": key, "uid": post.get("uid"), "corpus": post.get("corpus") or post.get("community"),
                       "title": post.get("title") or "", "body": post.get("body") or "", "themes": themes,
                       "labelled_in": Path(path).name, "imported_at": now}
        report.replaced += before is not None
        report.imported += 1
        changed = True
    if changed:
        _write_jsonl(stored.values(), store)
    return report


def _write_jsonl(records: Any, path: Path) -> None:
    import json
    import os
    import uuid

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def posts_by_id(records: Sequence[dict]) -> dict[str, dict]:
    """Training records addressable by key and by their platform id."""
    out: dict[str, dict] = {}
    for record in records:
        post = {"uid": record.get("uid"), "key": record["key"], "title": record.get("title"),
                "body": record.get("body"), "corpus": record.get("corpus")}
        out[record["key"]] = post
        if record.get("id"):
            out[str(record["id"])] = post
        if record.get("uid"):
            out[str(record["uid"])] = post
    return out


def lake_posts_by_id(frame: pd.DataFrame) -> dict[str, dict]:
    """Lake posts (uid, title, body, community) addressable by uid and by label key."""
    out: dict[str, dict] = {}
    for uid, title, body, community in zip(frame["uid"], frame["title"], frame["body"], frame["community"]):
        title, body = text_or_none(title), text_or_none(body)
        key = label_key(title, body)
        post = {"uid": uid, "key": key, "title": title, "body": body, "community": community}
        out[uid] = post
        out.setdefault(key, post)
    return out
