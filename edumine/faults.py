"""Deterministic crash points for the crash-consistency tests (tests/test_crash_matrix.py).

``EDUMINE_KILL_AT=<point>`` makes the process SIGKILL itself the first time it reaches ``kill_point(<point>)``;
``<point>@<n>`` the n-th time (1-based); ``<point>:TERM`` (or ``:INT``, ``:HUP``) sends that signal instead, to
test a clean shutdown. Unset (always, outside tests), ``kill_point`` is one dictionary
lookup. Points: ``collect.staging``, ``merge``, ``stage.<name>.before`` / ``stage.<name>.after`` for every
stage, and inside long stages ``preprocess.partition``, ``topics.fit``, ``topics.refit``, ``themes.write``,
``store.write``, ``report.write``.
"""

from __future__ import annotations

import os
import signal

ENV = "EDUMINE_KILL_AT"
_hits: dict[str, int] = {}


def kill_point(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    wanted, _, signame = wanted.partition(":")
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), getattr(signal, f"SIG{signame or 'KILL'}"))
