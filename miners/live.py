"""What the live sources (praw, Discourse, WordPress, feeds) share: lake binding, marks, retries, notes.

A live source has no files. Ingest calls ``bind`` before reading (the source loads its high-water marks
from the lake), ``read`` yields records, and ``commit`` after the lake merge succeeded (the source then
stores its new marks); ``notes()`` is what the run's manifest says about the source beyond counts
(truncated windows, failed communities, retries).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from pydantic import Field

from edumine.miners.base import BadRecord, Rejected, SourceConfig
from edumine.miners.state import StateStore, state_key
from edumine.schema import UTC

log = logging.getLogger(__name__)
T = TypeVar("T")


class LiveSourceConfig(SourceConfig):
    retries: int = Field(5, ge=0, description="retries of one request after a 429, 5xx, timeout or malformed reply")
    backoff_seconds: float = Field(2.0, ge=0, description="first retry delay; doubles with each retry")
    backoff_max_seconds: float = Field(120.0, ge=0, description="longest single wait (Retry-After included)")
    incremental: bool = Field(True, description="collect only what is newer than the marks in <lake>/_state/")


def guarded(build: Callable[..., dict], *args: Any, location: str, raw: Any = None) -> dict | Rejected:
    """The record ``build(*args)`` makes, or why it could not: one reply with a field of the wrong type must
    cost that record, not the run (the record normaliser in miners/records.py checks the rest)."""
    try:
        return build(*args)
    except BadRecord as exc:
        return Rejected(location, exc.reason, exc.detail, _shown(raw))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError) as exc:
        return Rejected(location, "bad_record", f"{type(exc).__name__}: {exc}", _shown(raw))


def _shown(raw: Any) -> str:
    if isinstance(raw, dict):  # no author in an excerpt: it is where a raw name sits
        raw = {k: v for k, v in raw.items() if k not in ("author", "username", "name", "author_fullname")}
    return "" if raw is None else repr(raw)[:2000]


class FetchFailed(RuntimeError):
    """A request that still failed after every retry, or that cannot succeed (404, 403, banned)."""


@dataclass
class Backoff:
    retries: int = 5
    base: float = 2.0
    cap: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        return min(self.base * (2 ** attempt) * (0.75 + 0.5 * random.random()), self.cap)  # noqa: S311


def each_subreddit(subreddits: list[str], stats: Any, notes: dict[str, Any],
                   read_one: Callable[[str, Any, dict[str, Any]], Iterator[dict | Rejected]]) \
        -> Iterator[dict | Rejected]:
    """``read_one(name, counts, note)`` for every subreddit in turn. One that fails keeps its previous mark, is
    reported (counted, noted, quarantined as ``fetch_failed``) and the others still run."""
    for name in subreddits:
        counts = stats.file(f"r/{name}")
        note: dict[str, Any] = {}
        notes[name] = note
        try:
            yield from read_one(name, counts, note)
        except FetchFailed as exc:
            note["failed"] = str(exc)
            counts["failed"] += 1
            log.error("r/%s failed and keeps its previous mark: %s", name, exc)
            yield Rejected(f"r/{name}", "fetch_failed", str(exc))


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    return http_date_delay(value)


def http_date_delay(value: str, now: float | None = None) -> float | None:
    """Seconds from ``now`` until an HTTP date (RFC 9110), never negative; None when it is not one."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def call_with_retries(fn: Callable[[], T], *, what: str, backoff: Backoff,
                      classify: Callable[[BaseException], tuple[bool, float | None]],
                      on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """Run ``fn`` until it succeeds; ``classify(exc)`` says (retryable, Retry-After seconds)."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001  (classified below; unknown errors are not retried)
            retryable, retry_after = classify(exc)
            if not retryable:
                raise FetchFailed(f"{what}: {type(exc).__name__}: {exc}") from exc
            if attempt >= backoff.retries:
                raise FetchFailed(f"{what}: {type(exc).__name__}: {exc} (after {attempt} retries)") from exc
            wait = backoff.delay(attempt, retry_after)
            attempt += 1
            log.warning("%s: %s; retry %d/%d in %.1fs", what, type(exc).__name__, attempt, backoff.retries, wait)
            if on_retry is not None:
                on_retry(exc, wait)
            time.sleep(wait)


class LiveSource:
    """Base of the sources that fetch over the network and keep marks in the lake."""

    kind = ""

    def __init__(self, *, retries: int = 5, backoff_seconds: float = 2.0, backoff_max_seconds: float = 120.0,
                 incremental: bool = True) -> None:
        self.backoff = Backoff(retries, backoff_seconds, backoff_max_seconds)
        self.incremental = incremental
        self._store: StateStore | None = None
        self._run_id = ""
        self.marks: dict[str, Any] = {}
        self._pending: dict[str, Any] = {}
        self._notes: dict[str, Any] = {"retries": 0}

    # -- what ingest calls ------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def bind(self, *, lake: Any, run_id: str, label: str) -> None:
        self._lake, self._label = lake, label
        self._store = StateStore(lake.root)
        self._run_id = run_id
        self.marks = self._store.load(self._key()) if self.incremental else {}
        self._pending = {}

    def commit(self) -> None:
        """Store the marks of what was read completely; called once the records are in the lake."""
        if self._store is None or not self._pending:
            return
        marks = {**self._store.load(self._key()), **self._pending}
        self._store.save(self._key(), marks, kind=self.kind, identity=self.identity(), run_id=self._run_id)
        self._pending = {}

    def notes(self) -> dict[str, Any]:
        return self._notes

    # -- helpers ----------------------------------------------------------------------------------
    def _key(self) -> str:
        return state_key(self.kind, self.identity())

    def _count_retry(self, exc: BaseException, wait: float) -> None:
        self._notes["retries"] = self._notes.get("retries", 0) + 1


class HttpStatusError(RuntimeError):
    def __init__(self, status: int, url: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status
        self.retry_after = retry_after


class MalformedReply(RuntimeError):
    """A 200 reply whose body is not what the API sends (truncated or invalid JSON, not a feed)."""


RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524})


def classify_http(exc: BaseException) -> tuple[bool, float | None]:
    import httpx

    if isinstance(exc, HttpStatusError):
        return exc.status in RETRY_STATUSES, exc.retry_after
    if isinstance(exc, (httpx.TimeoutException, httpx.TransportError, MalformedReply)):
        return True, None
    return False, None


class HttpClient:
    """httpx with the live sources' retry rules: 429 (Retry-After), 5xx, timeouts, dropped connections and
    malformed bodies are retried with backoff; other 4xx fail at once."""

    def __init__(self, base_url: str, *, source: LiveSource, timeout: float = 30.0, user_agent: str = "",
                 headers: dict[str, str] | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.source = source
        self._client = httpx.Client(timeout=timeout, follow_redirects=True,
                                    headers={"User-Agent": user_agent or "edumine/0.1 (research)",
                                             "Accept": "application/json, application/xml;q=0.9, */*;q=0.8",
                                             **(headers or {})})

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _get(self, path: str, params: Any = None) -> Any:
        url = self.url(path)
        response = self._client.get(url, params=params)
        if response.status_code >= 400:
            raise HttpStatusError(response.status_code, str(response.url.copy_with(query=None)),
                                  retry_after_seconds(response.headers.get("retry-after")))
        return response

    def get_json(self, path: str, params: Any = None, *, what: str = "") -> tuple[Any, Any]:
        """(parsed JSON, response headers)."""
        def fetch() -> tuple[Any, Any]:
            response = self._get(path, params)
            try:
                return response.json(), response.headers
            except ValueError as exc:
                raise MalformedReply(f"not JSON: {exc}") from None

        return call_with_retries(fetch, what=what or path, backoff=self.source.backoff, classify=classify_http,
                                 on_retry=self.source._count_retry)

    def get_bytes(self, path: str, params: Any = None, *, what: str = "",
                  check: Callable[[bytes], None] | None = None) -> tuple[bytes, Any]:
        def fetch() -> tuple[bytes, Any]:
            response = self._get(path, params)
            if check is not None:
                check(response.content)
            return response.content, response.headers

        return call_with_retries(fetch, what=what or path, backoff=self.source.backoff, classify=classify_http,
                                 on_retry=self.source._count_retry)


def host_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return (parts.hostname or "unknown") + (f"-{parts.port}" if parts.port else "")
