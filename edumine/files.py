"""Input files named by glob patterns, shared by file sources and the config check at load."""

from __future__ import annotations

import glob
from pathlib import Path


def expand_paths(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """Files matched by ``patterns`` (sorted, unique) and the patterns that matched nothing."""
    found: dict[str, Path] = {}
    unmatched = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else \
            ([pattern] if Path(pattern).is_file() else [])
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            unmatched.append(pattern)
        for match in matches:
            found.setdefault(str(Path(match).resolve()), Path(match))
    return list(found.values()), unmatched
