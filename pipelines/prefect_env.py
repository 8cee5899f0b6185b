"""Prefect defaults for edumine, set before Prefect is imported (a user's own settings win)."""

from __future__ import annotations

import os

DEFAULTS = {
    # A flow run with no server configured starts a temporary one: 13-19 s here, so the 20 s default is tight.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
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
