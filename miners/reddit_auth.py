"""Reddit credentials for praw (never logged or written anywhere) and a requests session that enforces a timeout."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import SecretStr

from edumine.miners.live import FetchFailed

ENV = {"client_id": "REDDIT_CLIENT_ID", "client_secret": "REDDIT_CLIENT_SECRET",
       "username": "REDDIT_USERNAME", "password": "REDDIT_PASSWORD"}


def resolve_credentials(*, site: str | None, credentials_block: str | None,
                        explicit: dict[str, SecretStr | None]) -> dict[str, str]:
    """Credentials for praw.Reddit: explicit fields, else a Prefect Secret block, else the environment.

    With none of those and a praw.ini ``site``, praw reads the site's own keys (returns {}).
    """
    found = {key: value.get_secret_value() for key, value in explicit.items() if value is not None}
    if not found and credentials_block:
        from prefect.blocks.system import Secret

        value = Secret.load(credentials_block).get()
        data = json.loads(value) if isinstance(value, str) else dict(value)
        found = {key: str(data[key]) for key in ENV if data.get(key)}
    if not found:
        found = {key: os.environ[env] for key, env in ENV.items() if os.environ.get(env)}
    if not found and site is None:
        raise FetchFailed("no Reddit credentials: set REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET (script apps also "
                          "REDDIT_USERNAME and REDDIT_PASSWORD), or give the source a praw.ini `site:` or a "
                          "Prefect Secret `credentials_block:`")
    return found


def session_with_timeout(seconds: float) -> Any:
    import requests

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, timeout: Any = None, **kwargs: Any) -> Any:
            return super().request(*args, timeout=min(float(timeout or seconds), seconds), **kwargs)

    return TimeoutSession()
