"""Per-source high-water marks, kept in the lake (``<lake>/_state/<key>.json``).

Live sources (praw, Discourse, WordPress, feeds) collect only what is newer than their last run. Their
marks live beside the data they describe, so copying or moving a lake keeps its collection history. A
source reads its marks when ingest binds it to the lake and writes new marks only after ingest has merged
the records into the lake (``LiveSource.commit``): a run killed in between re-fetches the same window
next time (the merge collapses it) instead of skipping records.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from edumine.manifest import write_json_atomic
from edumine.schema import UTC

STATE_DIR = "_state"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def state_key(kind: str, identity: dict[str, Any]) -> str:
    """A file-safe key for a source: its kind, a readable hint and a hash of what identifies it.

    ``identity`` holds what makes two configs read the same stream (endpoint, community, listing), not
    the config's name or position, so reordering sources or renaming one keeps its marks.
    """
    text = json.dumps(identity, sort_keys=True, default=str)
    hint = _UNSAFE.sub("-", str(identity.get("host") or identity.get("endpoint") or "")).strip("-")[:40]
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return "--".join(part for part in (kind, hint, digest) if part)


class StateStore:
    """JSON documents under ``<lake>/_state/``, written atomically."""

    def __init__(self, lake_root: str | Path) -> None:
        self.root = Path(lake_root) / STATE_DIR

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> dict[str, Any]:
        path = self.path(key)
        if not path.exists():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return data.get("marks", {}) if isinstance(data, dict) else {}

    def save(self, key: str, marks: dict[str, Any], *, kind: str, identity: dict[str, Any], run_id: str) -> None:
        write_json_atomic({"kind": kind, "identity": identity, "run_id": run_id,
                           "updated_at": datetime.now(UTC).isoformat(), "marks": marks}, self.path(key))
