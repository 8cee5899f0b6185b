"""Crash consistency of a run's derived outputs: a run commits them all, or none.

Collected posts need no help: every partition is replaced atomically and a rerun's merge converges to the
same rows (edumine/lake.py). What stages derive from them (docs, topics, the saved topic model and its
history, themes, lineage, the store, the report) spans many files, and a run killed between two of them
would leave a mix that the next run silently builds on (a refit recorded, its model not saved). So:

- ``begin``: before a pipeline run's first stage, every derived file is snapshotted under
  ``<lake>/_snapshot/`` (hard links for large files, which writers only ever replace, never rewrite; small
  files are copied); the folder appears by one atomic rename.
- ``commit``: when the run completes, the snapshot is removed.
- ``recover``: at the next run's start (under the lake's lock), a snapshot still there means the run that
  took it never completed: every derived file is put back as it was before that run, files it added are
  removed. Restoring is idempotent, so a crash while restoring is recovered by the next start too.
- ``mark_interrupted``: manifests still saying ``running`` belong to runs that died without closing
  (SIGKILL, power loss); they become ``interrupted``.
- ``verify_derived``: a derived Parquet file whose footer cannot be read (truncated, overwritten) is
  removed, so that its stage rebuilds it from its inputs; a damaged posts file is a clear error instead
  (posts are the primary data and cannot be derived).

Not part of the snapshot: ``posts/``, ``quarantine/`` and ``runs/`` (they record what happened), the
embedding caches ``cache/`` (keyed by content, so extra entries are harmless), live sources' marks
``_state/`` (they follow the posts), and lock files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from edumine.atomic import fsync_dir
from edumine.integrity import CorruptTable
from edumine.schema import UTC

log = logging.getLogger(__name__)

SNAPSHOT = "_snapshot"
KEPT = frozenset({"posts", "quarantine", "runs", "_staging", "_cache", "cache", "_state", SNAPSHOT, f"{SNAPSHOT}.tmp",
                  ".lock", ".merge.lock"})
COPY_BELOW = 256 << 10  # bytes: small files are copied (some are rewritten in place), large ones linked


# A posts file of the lake cannot be read (the CorruptTable of a raw table: nothing to rebuild it from).
LakeDamagedError = CorruptTable


def derived_files(root: Path) -> list[Path]:
    """Every derived file of the lake, relative to its root."""
    found = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name in KEPT:
            continue
        if entry.is_file():
            found.append(entry.relative_to(root))
        elif entry.is_dir():
            found += [p.relative_to(root) for p in sorted(entry.rglob("*"))
                      if p.is_file() and not p.name.startswith(".tmp-")]
    return found


def begin(root: Path, run_id: str) -> int:
    """Snapshot the derived files before a run changes them; returns how many."""
    root = Path(root)
    tmp = root / f"{SNAPSHOT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    files = derived_files(root)
    for relative in files:
        _place(root / relative, tmp / "files" / relative)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "run.json").write_text(json.dumps({"run_id": run_id, "files": len(files)}) + "\n", encoding="utf-8")
    fsync_dir(tmp)
    os.replace(tmp, root / SNAPSHOT)
    fsync_dir(root)
    return len(files)


def commit(root: Path) -> None:
    """The run completed: its outputs stand, the snapshot goes."""
    snapshot = Path(root) / SNAPSHOT
    if snapshot.exists():
        doomed = Path(root) / f"{SNAPSHOT}.done"
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(snapshot, doomed)  # one rename: a kill now cannot leave a half-removed snapshot
        shutil.rmtree(doomed, ignore_errors=True)


def recover(root: Path) -> dict[str, Any] | None:
    """Put the derived files back as they were before a run that did not complete; None if none to undo."""
    root = Path(root)
    shutil.rmtree(root / f"{SNAPSHOT}.tmp", ignore_errors=True)
    shutil.rmtree(root / f"{SNAPSHOT}.done", ignore_errors=True)
    snapshot = root / SNAPSHOT
    if not (snapshot / "run.json").exists():
        shutil.rmtree(snapshot, ignore_errors=True)
        return None
    about = json.loads((snapshot / "run.json").read_text(encoding="utf-8"))
    saved = {p.relative_to(snapshot / "files") for p in (snapshot / "files").rglob("*") if p.is_file()} \
        if (snapshot / "files").exists() else set()
    restored = removed = 0
    for relative in sorted(saved):
        target = root / relative
        source = snapshot / "files" / relative
        if target.exists() and _same(source, target):
            continue
        tmp = target.parent / f".tmp-restore-{target.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        _place(source, tmp)
        os.replace(tmp, target)
        restored += 1
    for relative in derived_files(root):
        if relative not in saved:
            (root / relative).unlink(missing_ok=True)
            removed += 1
    _remove_empty_dirs(root)
    commit(root)
    log.warning("run %s did not complete: %d derived files restored and %d it added removed",
                about.get("run_id"), restored, removed)
    return {"run_id": about.get("run_id"), "restored": restored, "removed": removed}


def mark_interrupted(root: Path, by_run: str) -> list[str]:
    """Manifests of runs that never closed (still ``running``) become ``interrupted``; returns their ids."""
    from edumine.manifest import write_json_atomic

    marked = []
    for path in sorted((Path(root) / "runs").glob("*/manifest.json")):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("status") != "running":
            continue
        manifest.update(status="interrupted", error=manifest.get("error") or
                        f"the run ended without closing (killed?); found by run {by_run} at "
                        f"{datetime.now(UTC).isoformat()}")
        write_json_atomic(manifest, path)
        marked.append(manifest.get("run_id") or path.parent.name)
    if marked:
        log.warning("runs %s never closed (killed?): marked interrupted", ", ".join(marked))
    return marked


def verify_derived(root: Path) -> list[str]:
    """Remove derived Parquet files that cannot be read, so that their stages rebuild them; raise
    ``LakeDamagedError`` for an unreadable posts file. Returns the removed files."""
    import pyarrow.parquet as pq

    root = Path(root)
    for path in sorted((root / "posts").glob("*/*/*/*.parquet")):
        try:
            pq.ParquetFile(path).metadata
        except Exception as exc:  # noqa: BLE001  (pyarrow raises several kinds for a damaged file)
            raise CorruptTable("posts", path, f"{type(exc).__name__}: {exc}") from None
    removed = []
    for relative in derived_files(root):
        if relative.suffix != ".parquet":
            continue
        try:
            pq.ParquetFile(root / relative).metadata
        except Exception as exc:  # noqa: BLE001
            log.warning("derived table file %s cannot be read (%s); removed, its stage rebuilds it", relative, exc)
            (root / relative).unlink(missing_ok=True)
            removed.append(str(relative))
    return removed


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.stat().st_size < COPY_BELOW:
        shutil.copy2(source, target)
    else:
        os.link(source, target)


def _same(a: Path, b: Path) -> bool:
    first, second = a.stat(), b.stat()
    if (first.st_ino, first.st_dev) == (second.st_ino, second.st_dev):
        return True
    return first.st_size == second.st_size and first.st_size < COPY_BELOW and a.read_bytes() == b.read_bytes()


def _remove_empty_dirs(root: Path) -> None:
    for entry in root.iterdir():
        if entry.is_dir() and entry.name not in KEPT:
            folders = [p for p in entry.rglob("*") if p.is_dir()] + [entry]
            for folder in sorted(folders, key=lambda p: -len(p.parts)):
                try:
                    folder.rmdir()
                except OSError:
                    pass

