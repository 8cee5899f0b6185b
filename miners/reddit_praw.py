"""``reddit.praw.v1``: subreddits live through Reddit's API with praw, incrementally.

Each run walks a subreddit's ``new`` listing newest-first and stops at the stored high-water mark (newest post
time plus the ids at that second; Reddit's ``before=`` is unreliable for this), then follows the subreddit's
comment stream (``/r/{sub}/comments``) back to its own mark, so a reply to a thread of any age is collected
once. Threads of the last ``lookback_days`` before the previous successful run (not before now: an outage of
days loses nothing) are read again for edits and deletions; only new or changed records are yielded. A deletion
arrives as a newer version without text; the lake keeps it deleted.

Listings stop at about 1,000 items. A listing that cannot reach its previous mark records the gap in the
manifest (``missing_window`` for posts, ``comment_gap`` for comments: from, to, ``missed_at_most`` and how to
backfill it from dumps, ``miners/reddit_gaps.py``).

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
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from edumine import registry
from edumine.miners.base import ReadStats, Rejected, time_bounds
from edumine.miners.live import (FetchFailed, LiveSource, LiveSourceConfig, call_with_retries, each_subreddit,
                                 guarded, retry_after_seconds)
from edumine.miners.reddit_auth import resolve_credentials, session_with_timeout
from edumine.miners.reddit_gaps import gap_note
from edumine.miners.reddit_records import comment_record, post_record
from edumine.schema import UTC, from_epoch

log = logging.getLogger(__name__)

SECRET_KEYS = frozenset({"client_id", "client_secret", "password", "username", "refresh_token"})
PAGE = 100


class RedditPrawConfig(LiveSourceConfig):
    kind: Literal["reddit.praw.v1"] = "reddit.praw.v1"
    subreddits: list[str] = Field(min_length=1)
    listing: Literal["new", "top"] = Field("new", description="new: nightly increments; top: backfill")
    time_filter: Literal["hour", "day", "week", "month", "year", "all"] = "all"
    comments: bool = Field(True, description="collect comments: the subreddit's comment stream and comment trees "
                                             "(MoreComments expanded up to more_limit)")
    more_limit: int | None = Field(32, ge=0, description="MoreComments stubs expanded per thread (null: all)")
    lookback_days: float = Field(3.0, ge=0, description="re-read threads this young at the previous successful "
                                                        "run for edits and deletions")
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
        self._yielded: dict[str, str] = {}

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
            extra["requestor_kwargs"] = {"session": session_with_timeout(float(settings["timeout"]))}
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
        yield from each_subreddit(self.subreddits, stats, self._notes["subreddits"],
                                  lambda name, counts, note: self._subreddit(reddit, name, counts, note))

    # -- one subreddit ------------------------------------------------------------------------------
    def _call(self, fn: Any, what: str) -> Any:
        return call_with_retries(fn, what=what, backoff=self.backoff, classify=_classify, on_retry=self._count_retry)

    def _subreddit(self, reddit: Any, name: str, counts: Any, note: dict[str, Any]) -> Iterator[dict]:
        key = name.lower()
        mark = self.marks.get(key, {})
        now = _now()
        # The look-back counts from the previous successful run: a job that was down for days still re-reads
        # every thread that was young when it last ran.
        previous_run = _epoch_of(mark.get("last_success"))
        horizon = min(previous_run or now, now) - self.lookback_days * 86400
        hwm = mark.get("newest_created") if self.listing == "new" else None
        hwm_ids = set(mark.get("newest_ids", []))
        low = time_bounds(self.since, None)[0] if self.since is not None else None
        self._yielded = {}  # comment id -> digest yielded in this run (stream and threads overlap)

        submissions, reached = self._listing(reddit, f"r/{name}/{self.listing}", f"r/{name} {self.listing} page",
                                             hwm, hwm_ids, low, min(self.max_posts, self.listing_cap))
        # Not reaching the mark (or `since`) means the listing ended at its cap or max_posts stopped it; a first
        # run without `since` is cut off only when it read as many posts as a listing can hold.
        full = len(submissions) >= min(self.listing_cap, self.max_posts)
        truncated = full if self.listing == "top" else \
            (not reached and (hwm is not None or low is not None or full))
        oldest = min(submissions, key=lambda s: s.__dict__["created_utc"], default=None)
        note.update(listing=self.listing, posts_listed=len(submissions), window_truncated=bool(truncated))
        if truncated:
            note["missing_window"] = gap_note(
                subreddit=name, kind="post", mark_created=hwm, mark_ids=hwm_ids, since=low,
                oldest_created=oldest.__dict__["created_utc"] if oldest else None,
                oldest_id=oldest.__dict__["id"] if oldest else None)
            counts["window_truncated"] = 1
            log.warning("r/%s: the %s listing stopped at its cap before reaching the previous mark; the window "
                        "%s is missing (backfill it from dumps)", name, self.listing, note["missing_window"])

        recent = {pid: entry for pid, entry in mark.get("recent", {}).items() if entry["created"] >= horizon}
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
                yield guarded(post_record, data, retrieved, location=f"reddit:post:{data.get('id')}", raw=data)
            if self.comments:
                previous = (known or {}).get("comments", {})
                entry["comments"] = yield from self._thread(reddit, pid, counts, note, previous, None)
            if data["created_utc"] >= horizon:
                recent[pid] = entry
        new_mark = dict(mark)
        if self.comments and self.listing == "new":
            new_mark.update((yield from self._comment_stream(reddit, name, mark, low, horizon, recent, counts, note)))
        for pid in sorted(set(recent) - fetched):
            counts["threads_refetched"] += 1
            entry = recent[pid]
            comments = yield from self._thread(reddit, pid, counts, note, entry.get("comments", {}), entry)
            entry["comments"] = comments

        counts["listed"] += len(submissions)
        newest = max((s.__dict__["created_utc"] for s in submissions), default=None)
        if self.listing == "new" and newest is not None and (hwm is None or newest >= hwm):
            ids = {s.__dict__["id"] for s in submissions if s.__dict__["created_utc"] == newest}
            new_mark["newest_created"] = newest
            new_mark["newest_ids"] = sorted(ids | (hwm_ids if newest == hwm else set()))
        new_mark["recent"] = recent
        new_mark["last_success"] = datetime.fromtimestamp(now, UTC).isoformat()
        self._pending[key] = new_mark
        note.update({k: counts[k] for k in ("posts", "comments", "updated", "threads_refetched", "more_skipped",
                                            "comments_streamed") if counts.get(k)})
        if hwm is not None:
            note["previous_mark"] = from_epoch(hwm).isoformat()

    def _comment_stream(self, reddit: Any, name: str, mark: dict[str, Any], low: float | None,
                        horizon: float | None, recent: dict[str, Any], counts: Any, note: dict[str, Any]) -> Any:
        """Yield the subreddit's comments newer than the comment mark (replies to threads of any age);
        returns the new comment mark."""
        hwm = mark.get("comments_newest_created")
        hwm_ids = set(mark.get("comments_newest_ids", []))
        if hwm is None and mark.get("last_success") and horizon is not None:
            low = max(low, horizon) if low is not None else horizon  # marks from before the stream: no false gap
        listed, reached = self._listing(reddit, f"r/{name}/comments", f"r/{name} comments page", hwm, hwm_ids, low,
                                        self.listing_cap)
        truncated = not reached and (hwm is not None or low is not None or len(listed) >= self.listing_cap)
        note.update(comments_listed=len(listed), comments_truncated=bool(truncated))
        if truncated:
            oldest = min(listed, key=lambda c: c.__dict__["created_utc"], default=None)
            note["comment_gap"] = gap_note(
                subreddit=name, kind="comment", mark_created=hwm, mark_ids=hwm_ids, since=low,
                oldest_created=oldest.__dict__["created_utc"] if oldest else None,
                oldest_id=oldest.__dict__["id"] if oldest else None)
            counts["comments_truncated"] = 1
            log.warning("r/%s: the comment listing stopped at its cap before reaching the previous mark; %s",
                        name, note["comment_gap"])
        retrieved = datetime.now(UTC)
        for comment in reversed(listed):  # oldest first, so parents tend to land before their replies
            data = comment.__dict__
            cid = data["id"]
            digest = self._comment_digest(data)
            thread = recent.get(str(data["link_id"]).split("_", 1)[-1])
            old = (thread or {}).get("comments", {}).get(cid)
            if self._yielded.get(cid) == digest or old == digest:
                continue
            self._yielded[cid] = digest
            if thread is not None:
                thread.setdefault("comments", {})[cid] = digest
            counts["comments" if old is None else "updated"] += 1
            counts["comments_streamed"] += 1
            yield guarded(comment_record, data, retrieved, location=f"reddit:comment:{data.get('id')}", raw=data)
        newest = max((c.__dict__["created_utc"] for c in listed), default=None)
        if newest is None or (hwm is not None and newest < hwm):
            return {}
        ids = {c.__dict__["id"] for c in listed if c.__dict__["created_utc"] == newest}
        return {"comments_newest_created": newest,
                "comments_newest_ids": sorted(ids | (hwm_ids if newest == hwm else set()))}

    def _listing(self, reddit: Any, path: str, what: str, hwm: float | None, hwm_ids: set[str],
                 low: float | None, most: int) -> tuple[list[Any], bool]:
        """Things newer than the mark, newest first, and whether the walk reached the mark (or `since`)."""
        params: dict[str, Any] = {"limit": PAGE}
        if self.listing == "top" and path.endswith("/top"):
            params["t"] = self.time_filter
        things: list[Any] = []
        after = None
        while len(things) < most:
            page_params = {**params, **({"after": after} if after else {})}
            page = self._call(lambda p=page_params: reddit.get(path, params=p), what)
            children = list(getattr(page, "children", []))
            for thing in children:
                data = thing.__dict__
                created = float(data["created_utc"])
                if hwm is not None and (created < hwm or (created == hwm and data["id"] in hwm_ids)):
                    return things, True
                if low is not None and created < low:
                    return things, True
                things.append(thing)
                if len(things) >= most:
                    return things, False
            after = getattr(page, "after", None)
            if not after or not children:
                return things, False
        return things, False

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
                yield guarded(post_record, data, retrieved, location=f"reddit:post:{data.get('id')}", raw=data)
        seen: dict[str, str] = {}
        from praw.models import Comment

        for comment in comments:
            if not isinstance(comment, Comment):
                continue
            data = comment.__dict__
            digest = self._comment_digest(data)
            seen[data["id"]] = digest
            old = previous.get(data["id"])
            if old == digest or self._yielded.get(data["id"]) == digest:
                continue
            self._yielded[data["id"]] = digest
            counts["comments" if old is None else "updated"] += 1
            yield guarded(comment_record, data, retrieved, location=f"reddit:comment:{data.get('id')}", raw=data)
        # A comment gone from the tree (removed by moderators) keeps its last version in the lake.
        return {**previous, **seen}

    # -- records ------------------------------------------------------------------------------------
    @staticmethod
    def _post_digest(data: dict[str, Any]) -> str:
        return _digest(data.get("title"), data.get("selftext"), data.get("edited"), data.get("removed_by_category"),
                       data.get("author") is None)

    @staticmethod
    def _comment_digest(data: dict[str, Any]) -> str:
        return _digest(data.get("body"), data.get("edited"), data.get("author") is None)


def _now() -> float:
    return time.time()


def _epoch_of(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp() if iso else None
    except ValueError:
        return None
