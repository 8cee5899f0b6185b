"""Prefect defaults for edumine, set before Prefect is imported (a user's own settings win)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    # A flow run with no server configured starts a temporary one: 13-19 s on an idle 2-core machine, so the
    # 20 s default is tight; beside other work (load 11 here) 120 s was not enough: waiting beats failing.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "edumine",
    # edumine's loggers also run outside flow runs (tests, the runner without Prefect): no warning for that.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
}


def configure_prefect() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    home = os.environ.get("PREFECT_HOME")
    if home:
        # The temporary server cannot open its database in a folder that does not exist: it fails, and the
        # client then waits out the whole startup timeout before it says anything.
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)
