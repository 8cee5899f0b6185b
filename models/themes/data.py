"""Theme labels: reading labelled posts, the label matrix, and multi-label stratified folds.

A labelled post is a dict ``{key, id, title, body, themes, ...}`` as in ``../shared/labels/sdl_train.jsonl``;
``key`` is the first 12 hex digits of sha1(title.strip() + "\\n" + body.strip()) over the raw fields, so a
post is recognised whatever source or export it came through. Later label files override earlier ones
for the same key (imported corrections win over the shipped set).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edumine.errors import EdumineError
from edumine.models.text.clean import clean_text
from edumine.models.themes.codebook import Codebook


class LabelsError(EdumineError):
    """A label file that cannot be used; the message lists the problems."""

    code = "E-LABELS"


def label_key(title: str | None, body: str | None) -> str:
    title = title if isinstance(title, str) else ""
    body = body if isinstance(body, str) else ""
    raw = title.strip() + "\n" + body.strip()
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LabelsError(f"{path}:{number}: not a JSON object ({exc})") from None
    return rows


def load_labels(paths: Sequence[str | Path], codebook: Codebook, *, missing_ok: Iterable[str | Path] = ()) -> list[dict]:
    """Labelled posts from JSONL files, validated against the codebook; one record per key, last file wins."""
    known = set(codebook.ids)
    optional = {str(Path(p)) for p in missing_ok}
    by_key: dict[str, dict] = {}
    problems: list[str] = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            if str(file) in optional:
                continue
            raise LabelsError(f"label file not found: {file} (working directory {Path.cwd()}); "
                              "set `themes.labels` to JSONL files of {key, title, body, themes}")
        for number, row in enumerate(read_jsonl(file), 1):
            themes = row.get("themes")
            if not isinstance(themes, list):
                problems.append(f"{file}:{number}: `themes` must be a list (empty for no theme)")
                continue
            unknown = sorted(set(themes) - known)
            if unknown:
                problems.append(f"{file}:{number}: theme(s) not in the codebook: {', '.join(unknown)}")
                continue
            key = row.get("key") or label_key(row.get("title"), row.get("body"))
            by_key[key] = {**row, "key": key, "themes": sorted(set(themes), key=codebook.ids.index),
                           "label_file": file.name}
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise LabelsError(f"{len(problems)} problem(s) in the theme labels:\n{shown}{more}")
    return list(by_key.values())


def text_or_none(value: Any) -> str | None:
    """A string field as str, or None for missing values (None, NaN from pandas)."""
    return value if isinstance(value, str) else None


def label_texts(records: Sequence[dict]) -> list[str]:
    return [text_or_none(record.get("text")) or clean_text(text_or_none(record.get("title")),
                                                           text_or_none(record.get("body")))
            for record in records]


def label_matrix(records: Sequence[dict], theme_ids: Sequence[str]) -> np.ndarray:
    index = {theme: i for i, theme in enumerate(theme_ids)}
    matrix = np.zeros((len(records), len(theme_ids)), dtype=np.int8)
    for row, record in enumerate(records):
        for theme in record["themes"]:
            matrix[row, index[theme]] = 1
    return matrix


def labels_fingerprint(records: Sequence[dict]) -> str:
    """Hash of what training sees (key, text and themes), independent of file order."""
    items = sorted((r["key"], label_key(r.get("title"), r.get("body")), tuple(r["themes"])) for r in records)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def multilabel_folds(Y: np.ndarray, n_splits: int, seed: int = 0) -> list[np.ndarray]:
    """Iterative stratification (Sechidis et al. 2011): fold indices keeping every theme's share per fold.

    Rare themes are placed first, so a theme with as many examples as folds gets one in each; rows with
    no theme are spread evenly afterwards. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    n, k = Y.shape
    desired = np.full(n_splits, n / n_splits)
    desired_per_label = np.outer(np.full(n_splits, 1 / n_splits), Y.sum(axis=0)).astype(float)
    fold_of = np.full(n, -1)
    remaining = np.ones(n, dtype=bool)
    for _ in range(k):
        counts = Y[remaining].sum(axis=0).astype(float)
        counts[counts == 0] = np.inf
        if not np.isfinite(counts).any():
            break
        label = int(np.argmin(counts))
        rows = np.flatnonzero(remaining & (Y[:, label] == 1))
        rng.shuffle(rows)
        for row in rows:
            need = desired_per_label[:, label]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[desired[best] == desired[best].max()]
            fold = int(rng.choice(best))
            fold_of[row] = fold
            remaining[row] = False
            desired[fold] -= 1
            desired_per_label[fold] -= Y[row]
    rest = np.flatnonzero(remaining)
    rng.shuffle(rest)
    for row in rest:
        best = np.flatnonzero(desired == desired.max())
        fold = int(rng.choice(best))
        fold_of[row] = fold
        desired[fold] -= 1
    return [np.flatnonzero(fold_of == f) for f in range(n_splits)]


def train_test_indices(Y: np.ndarray, test_share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A stratified held-out split: one of round(1 / test_share) iterative-stratification folds."""
    folds = multilabel_folds(Y, max(2, round(1 / test_share)), seed)
    test = folds[0]
    train = np.setdiff1d(np.arange(len(Y)), test)
    return train, test
