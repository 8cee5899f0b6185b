"""An httpx client for Arctic Shift's search API: a polite request rate, its rate-limit headers, and retries.

Arctic Shift (https://arctic-shift.photon-reddit.com, documented in ArthurHeitmann/arctic_shift ``api/README.md``)
is free and keyless. Its search endpoints answer ``{"data": [...]}``; a failed query answers ``{"error": "..."}``
("Query timed out" may succeed when asked again). It sends ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
and asks clients to be considerate: requests are spaced ``60 / requests_per_minute`` seconds apart, and when
the remaining budget reaches zero the client waits for the reset.

429 (``Retry-After`` first, then ``X-RateLimit-Reset``), 5xx, timeouts, dropped connections, malformed bodies and
query timeouts are retried with exponential backoff and jitter by tenacity; other 4xx fail at once.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from edumine.miners.live import FetchFailed, LiveSource, http_date_delay, retry_after_seconds
from edumine.schema import UTC

log = logging.getLogger(__name__)

PUBLIC_API = "https://arctic-shift.photon-reddit.com"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524})


class ApiError(RuntimeError):
    """An answer that is not ``{"data": [...]}``; ``wait`` is what the server asked for (seconds), if anything."""

    def __init__(self, message: str, *, retryable: bool, wait: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.wait = wait


def reset_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds until ``X-RateLimit-Reset``: its format is not documented, so epoch seconds, epoch milliseconds,
    seconds from now and HTTP or ISO dates are all accepted."""
    if not value:
        return None
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return http_date_delay(value, now)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now)
    if number > 1e11:
        number /= 1000.0
    return max(0.0, number - now) if number > 1e9 else max(0.0, number)


class ArcticShiftClient:
    def __init__(self, base_url: str, *, source: LiveSource, requests_per_minute: float, timeout: float = 60.0,
                 user_agent: str = "edumine/0.1 (research; educator communities)") -> None:
        import httpx

        self.source = source
        self.interval = 60.0 / requests_per_minute
        self._next_at = 0.0
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, follow_redirects=True,
                                    headers={"User-Agent": user_agent, "Accept": "application/json"})
        self.requests = 0

    def close(self) -> None:
        self._client.close()

    def search(self, endpoint: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """``data`` of one ``/api/{posts,comments}/search`` answer, retried as the module says."""
        from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt

        backoff = self.source.backoff
        retrying = Retrying(stop=stop_after_attempt(backoff.retries + 1), wait=self._wait,
                            retry=retry_if_exception(_retryable), before_sleep=self._before_sleep, reraise=False)
        what = f"{endpoint} {params.get('subreddit', '')}".strip()
        try:
            return retrying(self._search_once, endpoint, params)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise FetchFailed(f"{what}: {type(cause).__name__}: {cause} (after {backoff.retries} retries)") from cause
        except ApiError as exc:
            raise FetchFailed(f"{what}: {exc}") from exc

    # -- one request --------------------------------------------------------------------------------
    def _search_once(self, endpoint: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self._throttle()
        self.requests += 1
        response = self._client.get(endpoint, params=params)
        self._note_budget(response.headers)
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code >= 400:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if wait is None and response.status_code == 429:
                wait = reset_seconds(response.headers.get("x-ratelimit-reset"))
            retryable = response.status_code in RETRY_STATUSES or "timed out" in str(error or "").lower()
            raise ApiError(f"HTTP {response.status_code} from {endpoint}" + (f": {error}" if error else ""),
                           retryable=retryable, wait=wait)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            if error:
                raise ApiError(f"{endpoint}: {error}", retryable="timed out" in str(error).lower())
            raise ApiError(f"{endpoint}: the answer is not {{\"data\": [...]}} (truncated or not JSON)",
                           retryable=True)
        return [item for item in body["data"] if isinstance(item, dict)]

    def _throttle(self) -> None:
        with self._lock:
            wait = self._next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._next_at = max(self._next_at, time.monotonic()) + self.interval

    def _note_budget(self, headers: Any) -> None:
        """With no request left in the window, the next one waits for ``X-RateLimit-Reset``."""
        try:
            remaining = float(headers.get("x-ratelimit-remaining", "nan"))
        except ValueError:
            return
        if remaining <= 0:
            wait = reset_seconds(headers.get("x-ratelimit-reset"))
            if wait:
                wait = min(wait, self.source.backoff.cap)
                log.info("Arctic Shift rate limit reached; waiting %.1fs for the reset", wait)
                with self._lock:
                    self._next_at = max(self._next_at, time.monotonic() + wait)

    def _wait(self, state: Any) -> float:
        from tenacity import wait_exponential_jitter

        backoff = self.source.backoff
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ApiError) and exc.wait is not None:
            return min(exc.wait, backoff.cap)
        return wait_exponential_jitter(initial=backoff.base, max=backoff.cap, jitter=backoff.base / 2)(state)

    def _before_sleep(self, state: Any) -> None:
        exc = state.outcome.exception()
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("Arctic Shift: %s: %s; retry %d/%d in %.1fs", type(exc).__name__, exc, state.attempt_number,
                    self.source.backoff.retries, wait)
        self.source._count_retry(exc, wait)


def _retryable(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, ApiError):
        return exc.retryable
    return isinstance(exc, (httpx.TimeoutException, httpx.TransportError))
