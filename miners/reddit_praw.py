"""``reddit.praw.v1``: subreddits live through Reddit's API with praw, incrementally.

Each run walks a subreddit's ``new`` listing newest-first and stops at the stored high-water mark (the
newest post time seen, plus the ids at that second); Reddit's ``before=`` is unreliable for this. Posts of
the last ``lookback_days`` are re-fetched with their comment trees, because comments keep arriving (and
posts get edited or deleted) for days: only new or changed records are yielded, so a nightly run's
counts mean what they say. A deletion arrives as a newer version without text; the lake keeps it deleted.

Reddit listings stop at about 1,000 items. When a run cannot reach the previous mark (or, on a first run,
the listing ends at the cap), the source report says which window was cut off: backfill it from the
Pushshift / Arctic Shift dumps (``reddit.dumps.v1``).

prawcore retries 5xx, 408 and connection errors itself and honours the ``x-ratelimit-*`` headers; it
raises on 429 at once, so every page and thread fetch here is retried with backoff (``Retry-After``
first). A subreddit that still fails is reported (quarantine reason ``fetch_failed`` and the notes) and
keeps its old mark; the other subreddits land. Credentials come from ``client_id`` / ``client_secret``
fields (secret strings), a Prefect Secret block, the environment (``REDDIT_CLIENT_ID``,
``REDDIT_CLIENT_SECRET``, optional ``REDDIT_USERNAME`` / ``REDDIT_PASSWORD``) or a praw.ini site, and
are never logged or written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from edumine import registry
from edumine.miners.base import ReadStats, Rejected, time_bounds
from edumine.miners.live import (FetchFailed, LiveSource, LiveSourceConfig, call_with_retries, guarded,
                                 retry_after_seconds)
from edumine.schema import UTC, from_epoch, make_uid

log = logging.getLogger(__name__)

REDDIT = "https://www.reddit.com"
SECRET_KEYS = frozenset({"client_id", "client_secret", "password", "username", "refresh_token"})
ENV = {"client_id": "REDDIT_CLIENT_ID", "client_secret": "REDDIT_CLIENT_SECRET",
       "username": "REDDIT_USERNAME", "password": "REDDIT_PASSWORD"}
PAGE = 100


class RedditPrawConfig(LiveSourceConfig):
    kind: Literal["reddit.praw.v1"] = "reddit.praw.v1"
    subreddits: list[str] = Field(min_length=1)
    listing: Literal["new", "top"] = Field("new", description="new: nightly increments; top: backfill")
    time_filter: Literal["hour", "day", "week", "month", "year", "all"] = "all"
    comments: bool = Field(True, description="collect comment trees (MoreComments expanded up to more_limit)")
    more_limit: int | None = Field(32, ge=0, description="MoreComments stubs expanded per thread (null: all)")
    lookback_days: float = Field(3.0, ge=0, description="re-fetch posts this recent for new comments, edits "
                                                        "and deletions")
    since: date | datetime | None = Field(None, description="first run: collect posts from this time on")
    max_posts: int = Field(1000, ge=1, description="posts read from one listing per run and subreddit")
    listing_cap: int = Field(1000, ge=1, description="Reddit's listing depth (~1,000)")
    site: str | None = Field(None, description="praw.ini site holding the credentials")
    credentials_block: str | None = Field(None, description="Prefect Secret block: JSON with client_id, "
                                                            "client_secret[, username, password]")
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    username: SecretStr | None = None
    password: SecretStr | None = None
    praw: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="passed to praw.Reddit: user_agent, oauth_url, reddit_url, short_url, "
                                          "timeout, ...")

    @field_validator("subreddits")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [name.strip().removeprefix("r/").removeprefix("/r/") for name in value]
        if any(not name for name in names):
            raise ValueError("a subreddit name must not be empty")
        return names

    @field_validator("praw")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        secret = sorted(SECRET_KEYS & set(value))
        if secret:
            raise ValueError(f"{secret} would be written to run manifests: set REDDIT_CLIENT_ID / "
                             "REDDIT_CLIENT_SECRET (and REDDIT_USERNAME / REDDIT_PASSWORD) in the environment, "
                             "use a praw.ini `site:` or a Prefect Secret `credentials_block:` instead")
        return value


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


def _classify(exc: BaseException) -> tuple[bool, float | None]:
    import prawcore

    if isinstance(exc, prawcore.TooManyRequests):
        return True, retry_after_seconds(exc.response.headers.get("retry-after"))
    if isinstance(exc, (prawcore.NotFound, prawcore.Forbidden, prawcore.Redirect, prawcore.BadRequest,
                        prawcore.OAuthException, prawcore.UnavailableForLegalReasons, prawcore.InvalidInvocation)):
        return False, None
    if isinstance(exc, (prawcore.ResponseException, prawcore.RequestException)):
        return True, None  # 5xx after prawcore's own retries, timeouts, connection errors, malformed JSON
    return False, None


def _digest(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


@registry.sources.register("reddit.praw.v1")
class RedditPrawSource(LiveSource):
    Config = RedditPrawConfig
    kind = "reddit.praw.v1"
    platform = "reddit"

    def __init__(self, *, subreddits: list[str], listing: str = "new", time_filter: str = "all",
                 comments: bool = True, more_limit: int | None = 32, lookback_days: float = 3.0,
                 since: Any = None, max_posts: int = 1000, listing_cap: int = 1000, site: str | None = None,
                 credentials_block: str | None = None, client_id: SecretStr | None = None,
                 client_secret: SecretStr | None = None, username: SecretStr | None = None,
                 password: SecretStr | None = None, praw: dict[str, Any] | None = None, **live: Any) -> None:
        super().__init__(**live)
        self.subreddits = subreddits
        self.listing = listing
        self.time_filter = time_filter
        self.comments = comments
        self.more_limit = more_limit
        self.lookback_days = lookback_days
        self.since = since
        self.max_posts = max_posts
        self.listing_cap = listing_cap
        self.site = site
        self.credentials_block = credentials_block
        self._explicit = {"client_id": client_id, "client_secret": client_secret, "username": username,
                          "password": password}
        self.praw = dict(praw or {})

    def identity(self) -> dict[str, Any]:
        return {"endpoint": self.praw.get("oauth_url", "https://oauth.reddit.com"), "listing": self.listing,
                "time_filter": self.time_filter if self.listing == "top" else None}

    def reddit(self) -> Any:
        import praw

        settings = {"user_agent": "edumine/0.1 (research; educator communities)", **self.praw,
                    "check_for_updates": False, "check_for_async": False}
        credentials = resolve_credentials(site=self.site, credentials_block=self.credentials_block,
                                          explicit=self._explicit)
        if "client_secret" not in credentials and self.site is None:
            credentials["client_secret"] = None  # an installed app has no secret
        extra: dict[str, Any] = {}
        if settings.get("timeout"):
            # praw 8 reads `timeout` but prawcore's Session.request passes its own 16 s to every request, so the
            # setting would do nothing: a requests session (praw's documented requestor_kwargs) enforces it.
            extra["requestor_kwargs"] = {"session": _session_with_timeout(float(settings["timeout"]))}
        return praw.Reddit(self.site, **settings, **credentials, **extra) if self.site else \
            praw.Reddit(**settings, **credentials, **extra)

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        self._notes["subreddits"] = {}
        try:
            reddit = self.reddit()
        except Exception as exc:  # noqa: BLE001  (missing credentials or a praw.ini site without them)
            message = str(exc) if isinstance(exc, FetchFailed) else f"praw could not start: {type(exc).__name__}: {exc}"
            self._notes["error"] = message
            log.error("reddit.praw.v1: %s", message)
            for name in self.subreddits:
                yield Rejected(f"r/{name}", "no_credentials", message)
            return
        for name in self.subreddits:
            counts = stats.file(f"r/{name}")
            note: dict[str, Any] = {}
            self._notes["subreddits"][name] = note
            try:
                yield from self._subreddit(reddit, name, counts, note)
            except FetchFailed as exc:
                note["failed"] = str(exc)
                counts["failed"] += 1
                log.error("r/%s failed and keeps its previous mark: %s", name, exc)
                yield Rejected(f"r/{name}", "fetch_failed", str(exc))

    # -- one subreddit ------------------------------------------------------------------------------
    def _call(self, fn: Any, what: str) -> Any:
        return call_with_retries(fn, what=what, backoff=self.backoff, classify=_classify, on_retry=self._count_retry)

    def _subreddit(self, reddit: Any, name: str, counts: Any, note: dict[str, Any]) -> Iterator[dict]:
        key = name.lower()
        mark = self.marks.get(key, {})
        now = time.time()
        hwm = mark.get("newest_created") if self.listing == "new" else None
        hwm_ids = set(mark.get("newest_ids", []))
        low = time_bounds(self.since, None)[0] if self.since is not None else None

        submissions, reached = self._listing(reddit, name, hwm, hwm_ids, low)
        # Not reaching the mark (or `since`) means the listing ended at its cap or max_posts stopped it; a first
        # run without `since` is cut off only when it read as many posts as a listing can hold.
        full = len(submissions) >= min(self.listing_cap, self.max_posts)
        truncated = full if self.listing == "top" else \
            (not reached and (hwm is not None or low is not None or full))
        oldest = min((s.__dict__["created_utc"] for s in submissions), default=None)
        note.update(listing=self.listing, posts_listed=len(submissions), window_truncated=bool(truncated))
        if truncated:
            note["missing_window"] = {"from": from_epoch(hwm).isoformat() if hwm else
                                      (from_epoch(low).isoformat() if low is not None else None),
                                      "to": from_epoch(oldest).isoformat() if oldest else None,
                                      "backfill_with": "reddit.dumps.v1"}
            counts["window_truncated"] = 1
            log.warning("r/%s: the %s listing stopped at its cap before reaching the previous mark; the window "
                        "%s is missing (backfill it from dumps)", name, self.listing, note["missing_window"])

        recent = {pid: entry for pid, entry in mark.get("recent", {}).items()
                  if entry["created"] >= now - self.lookback_days * 86400}
        fetched = set()
        for submission in submissions:
            data = submission.__dict__
            pid = data["id"]
            fetched.add(pid)
            retrieved = datetime.now(UTC)
            entry = {"created": data["created_utc"], "digest": self._post_digest(data), "comments": {}}
            known = recent.get(pid) or mark.get("recent", {}).get(pid)
            if self.listing == "new" or known is None or known["digest"] != entry["digest"]:
                counts["posts"] += 1
                yield guarded(self._post_record, data, retrieved, location=f"reddit:post:{data.get('id')}", raw=data)
            if self.comments:
                previous = (known or {}).get("comments", {})
                entry["comments"] = yield from self._thread(reddit, pid, counts, note, previous, None)
            if data["created_utc"] >= now - self.lookback_days * 86400:
                recent[pid] = entry
        for pid in sorted(set(recent) - fetched):
            counts["threads_refetched"] += 1
            entry = recent[pid]
            comments = yield from self._thread(reddit, pid, counts, note, entry.get("comments", {}), entry)
            entry["comments"] = comments

        counts["listed"] += len(submissions)
        newest = max((s.__dict__["created_utc"] for s in submissions), default=None)
        new_mark = dict(mark)
        if self.listing == "new" and newest is not None and (hwm is None or newest >= hwm):
            ids = {s.__dict__["id"] for s in submissions if s.__dict__["created_utc"] == newest}
            new_mark["newest_created"] = newest
            new_mark["newest_ids"] = sorted(ids | (hwm_ids if newest == hwm else set()))
        new_mark["recent"] = recent
        new_mark["last_success"] = datetime.now(UTC).isoformat()
        self._pending[key] = new_mark
        note.update({k: counts[k] for k in ("posts", "comments", "updated", "threads_refetched", "more_skipped")
                     if counts.get(k)})
        if hwm is not None:
            note["previous_mark"] = from_epoch(hwm).isoformat()

    def _listing(self, reddit: Any, name: str, hwm: float | None, hwm_ids: set[str],
                 low: float | None) -> tuple[list[Any], bool]:
        """Posts newer than the mark, newest first, and whether the walk reached the mark (or `since`)."""
        path = f"r/{name}/{self.listing}"
        params: dict[str, Any] = {"limit": PAGE}
        if self.listing == "top":
            params["t"] = self.time_filter
        posts: list[Any] = []
        after = None
        while len(posts) < self.max_posts:
            page_params = {**params, **({"after": after} if after else {})}
            page = self._call(lambda p=page_params: reddit.get(path, params=p), f"r/{name} {self.listing} page")
            children = list(getattr(page, "children", []))
            for submission in children:
                data = submission.__dict__
                created = float(data["created_utc"])
                if hwm is not None and (created < hwm or (created == hwm and data["id"] in hwm_ids)):
                    return posts, True
                if low is not None and created < low:
                    return posts, True
                posts.append(submission)
                if len(posts) >= self.max_posts:
                    return posts, False
            after = getattr(page, "after", None)
            if not after or not children:
                return posts, False
        return posts, False

    def _thread(self, reddit: Any, pid: str, counts: Any, note: dict[str, Any], previous: dict[str, str],
                entry: dict[str, Any] | None) -> Any:
        """Yield the new or changed comments of one thread (and the post, when ``entry`` says it changed)."""

        def fetch() -> tuple[Any, list[Any], int]:
            submission = reddit.submission(id=pid)
            submission.comment_sort = "new"
            forest = submission.comments
            skipped = forest.replace_more(limit=self.more_limit)
            return submission, forest.list(), len(skipped)

        submission, comments, skipped = self._call(fetch, f"thread {pid}")
        retrieved = datetime.now(UTC)
        if skipped:
            counts["more_skipped"] += skipped
        if entry is not None:
            data = submission.__dict__
            digest = self._post_digest(data)
            if digest != entry.get("digest"):
                entry["digest"] = digest
                counts["updated"] += 1
                yield guarded(self._post_record, data, retrieved, location=f"reddit:post:{data.get('id')}", raw=data)
        seen: dict[str, str] = {}
        from praw.models import Comment

        for comment in comments:
            if not isinstance(comment, Comment):
                continue
            data = comment.__dict__
            digest = _digest(data.get("body"), data.get("edited"), data.get("author") is None)
            seen[data["id"]] = digest
            old = previous.get(data["id"])
            if old == digest:
                continue
            counts["comments" if old is None else "updated"] += 1
            yield guarded(self._comment_record, data, retrieved, location=f"reddit:comment:{data.get('id')}",
                          raw=data)
        # A comment gone from the tree (removed by moderators) keeps its last version in the lake.
        return {**previous, **seen}

    # -- records ------------------------------------------------------------------------------------
    @staticmethod
    def _post_digest(data: dict[str, Any]) -> str:
        return _digest(data.get("title"), data.get("selftext"), data.get("edited"), data.get("removed_by_category"),
                       data.get("author") is None)

    @staticmethod
    def _post_record(data: dict[str, Any], retrieved: datetime) -> dict[str, Any]:
        edited = data.get("edited")
        pid = data["id"]
        permalink = data.get("permalink") or f"/comments/{pid}/"
        return {
            "uid": make_uid("reddit", "post", pid), "platform": "reddit", "community": str(data["subreddit"]),
            "kind": "post", "id": pid, "parent_uid": None, "thread_uid": make_uid("reddit", "post", pid),
            "author": _name(data.get("author")), "created_at": from_epoch(float(data["created_utc"])),
            "title": data.get("title"), "body": data.get("selftext"),
            "url": REDDIT + permalink if permalink.startswith("/") else permalink,
            "link_url": None if data.get("is_self", True) else data.get("url"),
            "flair": data.get("link_flair_text"), "score": _int(data.get("score")),
            "num_comments": _int(data.get("num_comments")),
            "removal": data.get("removed_by_category") or None,
            "is_edited": bool(edited), "edited_at": from_epoch(float(edited)) if _is_time(edited) else None,
            "retrieved_at": retrieved,
        }

    @staticmethod
    def _comment_record(data: dict[str, Any], retrieved: datetime) -> dict[str, Any]:
        edited = data.get("edited")
        cid = data["id"]
        thread = str(data["link_id"]).split("_", 1)[-1]
        parent = str(data.get("parent_id") or f"t3_{thread}")
        permalink = data.get("permalink") or f"/comments/{thread}/_/{cid}/"
        return {
            "uid": make_uid("reddit", "comment", cid), "platform": "reddit", "community": str(data["subreddit"]),
            "kind": "comment", "id": cid,
            "parent_uid": make_uid("reddit", "comment" if parent.startswith("t1_") else "post",
                                   parent.split("_", 1)[-1]),
            "thread_uid": make_uid("reddit", "post", thread), "author": _name(data.get("author")),
            "created_at": from_epoch(float(data["created_utc"])), "title": None, "body": data.get("body"),
            "url": REDDIT + permalink if permalink.startswith("/") else permalink, "link_url": None, "flair": None,
            "score": _int(data.get("score")), "num_comments": None, "removal": None,
            "is_edited": bool(edited), "edited_at": from_epoch(float(edited)) if _is_time(edited) else None,
            "retrieved_at": retrieved,
        }


def _session_with_timeout(seconds: float) -> Any:
    import requests

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, timeout: Any = None, **kwargs: Any) -> Any:
            return super().request(*args, timeout=min(float(timeout or seconds), seconds), **kwargs)

    return TimeoutSession()


def _name(author: Any) -> str | None:
    return None if author is None else str(getattr(author, "name", author))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1
