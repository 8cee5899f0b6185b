"""Run manifests: what ran, on what, with which code, and what came out (``<lake>/runs/<id>/manifest.json``)."""

from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import subprocess
from datetime import datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from edumine import __version__
from edumine.schema import UTC

log = logging.getLogger(__name__)

LIBRARIES = ("pyarrow", "duckdb", "pandas", "prefect", "pydantic", "zstandard", "orjson", "scikit-learn",
             "spacy", "bertopic", "sentence-transformers", "torch", "praw")


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """Package version, and the git commit (with a dirty flag) when run from a checkout."""
    info: dict[str, Any] = {"edumine": __version__}
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=5, check=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            info.update(git_commit=commit, git_dirty=bool(dirty))
        except (OSError, subprocess.SubprocessError):
            pass
    return info


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_json_atomic(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # durable before anything recorded after it refers to it
    os.replace(tmp, path)


def run_manifests(lake_root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable ``runs/*/manifest.json`` with its path, oldest first. Ordered by start time, then run id:
    run ids have one-second resolution, so two runs started within one second do not sort by name."""
    found = []
    for path in (Path(lake_root) / "runs").glob("*/manifest.json"):
        try:
            found.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable manifest %s: %s", path, exc)
    return sorted(found, key=lambda item: (_started(item[1]), item[0].parent.name))


def _started(manifest: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(manifest.get("started_at")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def read_manifest(lake_root: Path, run_id: str) -> dict[str, Any]:
    return json.loads((Path(lake_root) / "runs" / run_id / "manifest.json").read_text(encoding="utf-8"))
