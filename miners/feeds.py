"""``feed.v1``: RSS and Atom feeds (blogs, teacher organisations) with feedparser, incrementally.

The feed is fetched with httpx (retries as for every live source) and parsed with feedparser. Entries
newer than the feed's mark (newest entry time and the ids at that second) are yielded, and entries
updated since the last run as new versions. Feeds hold only their newest entries: when a whole page is
new, older pages are followed (Atom ``rel="next"`` links, RFC 5005, or WordPress's ``?paged=N`` when
``wordpress_paging`` is set) up to ``max_pages``; a window still not reached is reported as truncated.
WordPress feed ids (``?p=123``, ``?p=123#comment-45``) give the same uids as the WordPress REST API, so
a blog read either way is one set of records. Entries of a comments feed become ``comment`` records of
their post. HTML content becomes plain text (``miners/html_text.py``).
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from edumine import registry
from edumine.miners.base import BadRecord, ReadStats, Rejected, record_builder, time_bounds
from edumine.miners.html_text import html_to_text
from edumine.miners.live import FetchFailed, HttpClient, HttpStatusError, LiveSource, LiveSourceConfig, \
    MalformedReply, host_of
from edumine.schema import UTC, from_epoch, make_uid

log = logging.getLogger(__name__)
_WP_POST = re.compile(r"[?&]p=(\d+)")
_WP_COMMENT = re.compile(r"#comment-(\d+)")


class FeedConfig(LiveSourceConfig):
    kind: Literal["feed.v1"] = "feed.v1"
    urls: list[str] = Field(min_length=1, description="RSS or Atom feed URLs")
    platform: str = Field("blog", description="lake platform of the entries")
    community: str | None = Field(None, description="lake community; default: each feed's host name")
    since: date | datetime | None = Field(None, description="first run: entries from this time on")
    max_pages: int = Field(10, ge=1, description="feed pages followed per run when every entry is new")
    wordpress_paging: bool = Field(False, description="older pages are ?paged=2, 3, ... (WordPress feeds)")
    timeout: float = Field(30.0, gt=0)
    user_agent: str = "edumine/0.1 (research; educator communities)"


def _check_feed(content: bytes) -> None:
    import feedparser

    parsed = feedparser.parse(content)
    if parsed.bozo and not parsed.entries and not parsed.feed:
        raise MalformedReply(f"not an RSS/Atom feed: {parsed.get('bozo_exception')}")


@registry.sources.register("feed.v1")
class FeedSource(LiveSource):
    Config = FeedConfig
    kind = "feed.v1"

    def __init__(self, *, urls: list[str], platform: str = "blog", community: str | None = None, since: Any = None,
                 max_pages: int = 10, wordpress_paging: bool = False, timeout: float = 30.0, user_agent: str = "",
                 **live: Any) -> None:
        super().__init__(**live)
        self.urls = urls
        self.platform = platform
        self.community = community
        self.since = since
        self.max_pages = max_pages
        self.wordpress_paging = wordpress_paging
        self.timeout = timeout
        self.user_agent = user_agent

    def identity(self) -> dict[str, Any]:
        return {"host": host_of(self.urls[0]), "urls": sorted(self.urls), "platform": self.platform}

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        self._notes.setdefault("feeds", {})
        for url in self.urls:
            counts = stats.file(url)
            client = HttpClient(url, source=self, timeout=self.timeout, user_agent=self.user_agent)
            try:
                yield from self._feed(client, url, counts)
            except FetchFailed as exc:
                counts["failed"] += 1
                self._notes["feeds"][url] = {"failed": str(exc)}
                log.error("feed %s failed and keeps its previous mark: %s", url, exc)
                yield Rejected(url, "fetch_failed", str(exc))
            finally:
                client.close()

    def _feed(self, client: HttpClient, url: str, counts: Any) -> Iterator[dict | Rejected]:
        import feedparser

        mark = self.marks.get(url, {})
        newest_mark = mark.get("newest")
        ids_at_mark = set(mark.get("ids_at_newest", []))
        checked = mark.get("updated_newest")  # the feed's own clock: entries updated after it are new versions
        updated_newest = checked
        low = time_bounds(self.since, None)[0] if self.since is not None and newest_mark is None else None
        host = host_of(url)
        page_url: str | None = url
        pages, reached, entries_seen = 0, False, []
        while page_url and pages < self.max_pages and not reached:
            try:
                content, _ = client.get_bytes(page_url, what=f"feed {page_url}", check=_check_feed)
            except FetchFailed as exc:
                if pages and isinstance(exc.__cause__, HttpStatusError) and exc.__cause__.status == 404:
                    break  # WordPress answers 404 past its last page
                raise
            pages += 1
            parsed = feedparser.parse(content)
            retrieved = datetime.now(UTC)
            for entry in parsed.entries:
                try:
                    record = self._record(entry, host, retrieved)
                except BadRecord as exc:
                    raw = {key: entry.get(key) for key in ("id", "link", "title", "published", "updated", "author")}
                    yield Rejected(f"{page_url}#{entry.get('id', '?')}", exc.reason, exc.detail, raw,
                                   personal=("author",))
                    continue
                created = record["created_at"].timestamp()
                entries_seen.append((created, record["id"]))
                updated = _time(entry, "updated_parsed")
                if updated is not None:
                    updated_newest = updated if updated_newest is None else max(updated_newest, updated)
                old = (newest_mark is not None and (created < newest_mark or
                                                    (created == newest_mark and record["id"] in ids_at_mark))) or \
                    (low is not None and created < low)
                if old:
                    reached = True
                    if checked is not None and updated is not None and updated > checked and updated > created:
                        counts["updated"] += 1
                        yield record
                    continue
                counts["posts" if record["kind"] == "post" else "comments"] += 1
                yield record
            page_url = self._next_page(parsed, url, pages)
        truncated = not reached and page_url is not None and (newest_mark is not None or low is not None)
        self._notes["feeds"][url] = {"pages": pages, "entries": len(entries_seen), "window_truncated": truncated}
        newest = max(entries_seen, default=None)
        new_mark = {"updated_newest": updated_newest, "newest": newest_mark, "ids_at_newest": sorted(ids_at_mark)}
        if newest is not None and (newest_mark is None or newest[0] >= newest_mark):
            ids = {i for t, i in entries_seen if t == newest[0]}
            new_mark.update(newest=newest[0], ids_at_newest=sorted(ids | (ids_at_mark if newest[0] == newest_mark
                                                                           else set())))
        self._pending[url] = new_mark

    def _next_page(self, parsed: Any, url: str, pages: int) -> str | None:
        for link in parsed.feed.get("links", []):
            if link.get("rel") == "next" and link.get("href"):
                return link["href"]
        if self.wordpress_paging and parsed.entries:
            return f"{url}{'&' if '?' in url else '?'}paged={pages + 1}"
        return None

    @record_builder
    def _record(self, entry: Any, host: str, retrieved: datetime) -> dict[str, Any]:
        created = _time(entry, "published_parsed") or _time(entry, "updated_parsed")
        if created is None:
            raise BadRecord("missing_time", "an entry without a published or updated time")
        guid = str(entry.get("id") or entry.get("link") or "")
        link = str(entry.get("link") or "")
        post_match = _WP_POST.search(guid) or _WP_POST.search(link)
        comment_match = _WP_COMMENT.search(guid) or _WP_COMMENT.search(link)
        if not guid and not entry.get("title"):
            raise BadRecord("missing_id", "an entry without id, link or title")
        own_id = (comment_match.group(1) if comment_match else post_match.group(1) if post_match else
                  "h" + hashlib.sha1((guid or entry.get("title", "")).encode()).hexdigest()[:16])
        kind = "comment" if comment_match else "post"
        record_id = f"{host}:{own_id}"
        uid = make_uid(self.platform, kind, record_id)
        thread_uid = uid
        if kind == "comment":
            thread_uid = make_uid(self.platform, "post", f"{host}:{post_match.group(1)}") if post_match else None
        content = entry.get("content") or []
        html = content[0].get("value") if content else entry.get("summary")
        title = html_to_text(entry.get("title")) if kind == "post" else None
        updated = _time(entry, "updated_parsed")
        return {
            "uid": uid, "platform": self.platform, "community": self.community or host, "kind": kind,
            "id": record_id, "parent_uid": thread_uid if kind == "comment" else None, "thread_uid": thread_uid,
            "author": entry.get("author"), "created_at": from_epoch(created), "title": title,
            "body": html_to_text(html), "url": link or None, "link_url": None,
            "flair": ", ".join(t.get("term", "") for t in entry.get("tags", [])[:5]) or None,
            "score": None, "num_comments": None, "removal": None,
            "is_edited": updated is not None and updated > created,
            "edited_at": from_epoch(updated) if updated is not None and updated > created else None,
            "retrieved_at": retrieved,
        }


def _time(entry: Any, key: str) -> float | None:
    value = entry.get(key)
    return float(calendar.timegm(value)) if value else None
