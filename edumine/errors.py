"""Errors that reach a user: each says what went wrong, why, and how to fix it, and carries a stable code.

The CLI prints ``error [CODE]: message`` with no traceback and exits 2. Codes are part of the outside
contract (scripts match on them); a new kind of user error gets a new code here.

| code | class | raised when |
|---|---|---|
| E-USER | EdumineError | any other user mistake (a bad command-line argument) |
| E-CONFIG | ConfigError | the config is invalid: every problem at once, with dotted paths |
| E-REGISTRY | RegistryError | a registry name is unknown (outside a config) |
| E-LAKE-BUSY | LakeBusyError | another run holds the lake's write lock |
| E-QUERY | QueryError | `edumine query` refused or could not run the SQL |
| E-STORE | StoreError | the summary store cannot be built or copied |
| E-CODEBOOK | CodebookError | the SDL codebook file is invalid |
| E-LABELS | LabelsError | a theme label file is invalid |
| E-CORRUPT-TABLE | CorruptTable (edumine/integrity.py) | a lake table's file cannot be read (posts: final; derived: rebuilt) |
| E-CORRUPT-ARTEFACT | CorruptArtefact (edumine/integrity.py) | a saved model fails its checksums or cannot be loaded |
"""

from __future__ import annotations


class EdumineError(Exception):
    """Base class of errors meant to be shown to a user without a traceback."""

    code = "E-USER"


class ConfigError(EdumineError):
    """The configuration is invalid. ``problems`` holds every problem found, as (dotted path, message)."""

    code = "E-CONFIG"

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in config {source}:"]
        lines += [f"  - {path or '<root>'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class LakeBusyError(EdumineError):
    """Another run holds the lake's write lock."""

    code = "E-LAKE-BUSY"


class QueryError(EdumineError):
    """A query that cannot be run (refused or invalid)."""

    code = "E-QUERY"
