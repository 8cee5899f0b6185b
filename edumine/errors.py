"""Errors that reach a user: each says what went wrong, why, and how to fix it."""

from __future__ import annotations


class EdumineError(Exception):
    """Base class of errors meant to be shown to a user without a traceback."""


class ConfigError(EdumineError):
    """The configuration is invalid. ``problems`` holds every problem found, as (dotted path, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in config {source}:"]
        lines += [f"  - {path or '<root>'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class LakeBusyError(EdumineError):
    """Another run holds the lake's write lock."""


class QueryError(EdumineError):
    """A query that cannot be run (refused or invalid)."""
