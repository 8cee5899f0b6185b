"""Files a collection has read, and whether they changed since (``<lake>/_state/files--<kind>--<hash>.json``).

A nightly collection of dump or export files would otherwise reread every file its globs match, to find the
few records that are new: at 20,000 contributions that was 99 % duplicates. A file whose path, size,
modification time and a digest of its first and last MiB are what they were when a collection last read it
completely is left out (``FileListing.skip``); any change to one of them, or a file not seen before, and the
file is read whole. Rereading an unchanged file could change nothing: the merge keeps the stored row on a tie,
so its records would all be duplicates.

The ledger is kept per source identity (its kind and every setting that decides what its files yield, plus
the collection settings that shape records and the pseudonym key's fingerprint), so a changed filter, column
map or key rereads everything. It is written only after the source's records are merged into the lake, and
a file that could not be read to its end (``unreadable_file``) is not recorded: it is read again next time.
``collect.skip_unchanged_files: false`` rereads every file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from edumine.miners.state import StateStore, state_key

SAMPLE_BYTES = 1 << 20  # head and tail digested: a rewritten dump differs there, or in size or mtime


def signature(path: Path) -> dict[str, Any]:
    """Size, modification time (ns) and a BLAKE2 digest of the first and last MiB of ``path``."""
    stat = path.stat()
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if stat.st_size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, stat.st_size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "digest": digest.hexdigest()}


def source_identity(source: Any, kind: str, extra: dict[str, Any]) -> dict[str, Any]:
    """What decides the records a file source yields: its settings as given (not ``workers``, which only
    parallelises, nor ``skip``) and the collection's ``extra`` settings."""
    settings = {k: v for k, v in vars(source).items() if not k.startswith("_") and k not in ("skip", "workers")}
    return {"kind": kind, "settings": settings, **extra}


class FileLedger:
    """The files of one source a collection read completely, with their signatures when it read them."""

    def __init__(self, lake_root: str | Path, kind: str, identity: dict[str, Any]) -> None:
        self.store = StateStore(lake_root)
        self.kind, self.identity = kind, identity
        self.key = state_key(f"files.{kind}", identity)
        self.seen: dict[str, dict[str, Any]] = {}

    def unchanged(self, paths: list[Path]) -> set[str]:
        """The paths whose signature equals the recorded one. Signatures are taken now, before reading: a file
        that changes while it is read is read again next time."""
        recorded = self.store.load(self.key)
        same = set()
        for path in paths:
            try:
                self.seen[str(path)] = now = signature(path)
            except OSError:
                continue  # gone or unreadable: the source reports it when it tries
            if recorded.get(str(path)) == now:
                same.add(str(path))
        return same

    def commit(self, failed: set[str], run_id: str) -> None:
        """Record every file signed by ``unchanged`` but those in ``failed`` (call once the records are merged)."""
        marks = {path: sig for path, sig in sorted(self.seen.items()) if path not in failed}
        self.store.save(self.key, marks, kind=f"files.{self.kind}", identity=self.identity, run_id=run_id)
