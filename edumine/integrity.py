"""Damaged files: found where they are read, named, and rebuilt by the stage that owns them.

- Tables: every Parquet file the lake writes carries page checksums (``write_parquet_atomic``), and
  ``Lake.read`` verifies them; a file that cannot be read (truncated, garbled, a schema that does not fit the
  table's other files) raises ``CorruptTable`` naming the table, the file and what to do.
- Artefacts (saved models): a folder is sealed after it is written (``checksums.json``: size and SHA-256 of
  every file) and verified before it is loaded; a mismatch, a missing file or a missing seal where the
  pointer says there is one raises ``CorruptArtefact``.
- The runner (``pipelines/runner.py``) catches both from a stage: a derived table's damaged files are
  removed and its owner stage runs again from its inputs, then the stage that met the damage (a warning in
  the log, a line in the manifest's ``notes``). Posts are primary data: ``CorruptTable`` for them is final.

Files written before page checksums existed are still checked for what Parquet can check without them
(footer, page headers, decompression).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edumine.errors import EdumineError

log = logging.getLogger(__name__)

SEAL = "checksums.json"
# Model code that repairs something on its way (a registry rebuilt, a damaged model refitted) says so here; the
# runner turns every such warning of a stage into a line of the run manifest's ``notes`` (``noting``).
REPAIRS = logging.getLogger("edumine.repairs")
RAW_TABLES = frozenset({"posts", "quarantine"})  # primary data: nothing to rebuild them from


@contextmanager
def noting(add: Callable[[str], None]) -> Iterator[None]:
    """While inside, every record logged on ``REPAIRS`` is also given to ``add`` (its message)."""

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            add(record.getMessage())

    handler = _Forward(level=logging.WARNING)
    REPAIRS.addHandler(handler)
    try:
        yield
    finally:
        REPAIRS.removeHandler(handler)


class CorruptTable(EdumineError):
    """A file of a lake table cannot be read. ``table``, ``path`` (the file) and ``reason`` say which and why."""

    code = "E-CORRUPT-TABLE"

    def __init__(self, table: str, path: Path | str, reason: str) -> None:
        from edumine import catalog

        self.table, self.path, self.reason = table, Path(path), reason
        self.owner = catalog.CATALOG[table].owner if table in catalog.CATALOG else None
        if table in RAW_TABLES:
            fix = ("posts are primary data and cannot be rebuilt: a run that died while writing is undone by "
                   "the next run's start (edumine/recovery.py); otherwise restore the file from a backup, or "
                   "remove it and collect the sources that fed it again (edumine collect)")
        else:
            fix = (f"it is derived: the next `edumine run` removes the file and rebuilds the table with the "
                   f"{self.owner} stage from its inputs (or remove {self.path} and run it yourself)")
        super().__init__(f"lake table {table!r}: file {self.path} cannot be read ({reason}); {fix}")

    @property
    def raw(self) -> bool:
        return self.table in RAW_TABLES


class CorruptArtefact(EdumineError):
    """A saved artefact (a model folder) fails its checksums or cannot be loaded."""

    code = "E-CORRUPT-ARTEFACT"

    def __init__(self, name: str, path: Path | str, reason: str) -> None:
        self.name, self.path, self.reason = name, Path(path), reason
        super().__init__(f"{name} at {self.path} is damaged ({reason}); it is rebuilt from its inputs by the "
                         "stage that owns it on the next run (or remove the folder to rebuild it now)")


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SEAL and not p.name.startswith(".tmp-"))


def seal(folder: Path) -> str:
    """Record size and SHA-256 of every file in ``folder`` (``checksums.json``, written atomically);
    returns the seal's own digest, for a pointer to the folder to keep."""
    from edumine.manifest import write_json_atomic

    folder = Path(folder)
    entries = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _digest(p)}
               for p in _files(folder)}
    write_json_atomic({"files": entries}, folder / SEAL)
    return _digest(folder / SEAL)


def seal_digest(folder: Path) -> dict[str, str]:
    """``{"seal": digest}`` of a sealed folder, for the pointer that names it (empty when it has no seal)."""
    path = Path(folder) / SEAL
    return {"seal": _digest(path)} if path.is_file() else {}


def verify(folder: Path, name: str, *, seal_digest: str | None = None, required: bool = False) -> bool:
    """Check a sealed folder; raise ``CorruptArtefact`` on any difference. Returns False for a folder
    without a seal when neither ``seal_digest`` (what the pointer recorded) nor ``required`` asks for one
    (folders written before seals existed)."""
    folder = Path(folder)
    path = folder / SEAL
    if not folder.is_dir():
        raise CorruptArtefact(name, folder, "the folder is missing")
    if not path.is_file():
        if seal_digest or required:
            raise CorruptArtefact(name, folder, f"its {SEAL} is missing")
        return False
    if seal_digest and _digest(path) != seal_digest:
        raise CorruptArtefact(name, folder, f"its {SEAL} differs from the one recorded when it was saved")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptArtefact(name, folder, f"its {SEAL} cannot be read ({type(exc).__name__})") from None
    for relative, expected in sorted(entries.items()):
        file = folder / relative
        if not file.is_file():
            raise CorruptArtefact(name, folder, f"{relative} is missing")
        if file.stat().st_size != expected["size"]:
            raise CorruptArtefact(name, folder, f"{relative} has {file.stat().st_size} bytes, "
                                                f"{expected['size']} were saved (truncated?)")
        if _digest(file) != expected["sha256"]:
            raise CorruptArtefact(name, folder, f"{relative} does not match its checksum (overwritten or garbled)")
    return True


def check_parquet(path: Path) -> str | None:
    """Why a Parquet file cannot be read in full (None: it can): footer, every page, page checksums."""
    import pyarrow.parquet as pq

    try:
        pq.read_table(path, page_checksum_verification=True)
    except Exception as exc:  # noqa: BLE001  (pyarrow raises OSError, ArrowInvalid, ArrowTypeError, ...)
        return f"{type(exc).__name__}: {exc}"
    return None


def table_files(root: Path, table: str) -> list[Path]:
    folder = Path(root) / table
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(".")) if folder.is_dir() else []


def find_damage(root: Path, table: str) -> CorruptTable | None:
    """The first file of ``table`` that cannot be read in full, as an error (None: all read). A file whose
    schema does not fit the table's first file is damage too (a foreign or garbled-but-readable file)."""
    import pyarrow.parquet as pq

    first = None
    for path in table_files(root, table):
        reason = check_parquet(path)
        if reason is None:
            schema = pq.read_schema(path)
            if first is None:
                first = schema
            elif not _compatible(first, schema):
                reason = f"its schema does not fit the table's other files ({_schema_difference(first, schema)})"
        if reason is not None:
            return CorruptTable(table, path, reason)
    return None


def _compatible(a: Any, b: Any) -> bool:
    """Files of one table may differ by columns added later (read as null), not by a column's type."""
    common = set(a.names) & set(b.names)
    return bool(common) and all(a.field(n).type == b.field(n).type for n in common)


def _schema_difference(a: Any, b: Any) -> str:
    common = set(a.names) & set(b.names)
    if not common:
        return "no column in common"
    clashing = sorted(n for n in common if a.field(n).type != b.field(n).type)
    return ", ".join(f"{n}: {a.field(n).type} vs {b.field(n).type}" for n in clashing[:3])


def remove_damaged(root: Path, damage: CorruptTable) -> list[str]:
    """Remove the damaged files of a derived table (every file that fails the full check), so that its owner
    stage rebuilds the table from its inputs; returns them relative to the lake."""
    if damage.raw:
        raise damage
    removed = []
    for path in table_files(root, damage.table):
        if path == damage.path or check_parquet(path) is not None:
            path.unlink(missing_ok=True)
            removed.append(path.relative_to(root).as_posix())
    if damage.path.exists():  # not a .parquet name, or outside the table's folder
        os.unlink(damage.path)
        removed.append(str(damage.path))
    return removed
