"""``wordpress.v1``: a WordPress blog through its REST API, falling back to its feeds.

Posts come from ``/wp-json/wp/v2/posts`` (``_embed`` for author names) and comments from
``/wp-json/wp/v2/comments``, oldest first, page by page (``X-WP-TotalPages``), from ``after=`` the
stored mark; posts edited since the last run come from ``modified_after=`` (WordPress 5.7+). Rendered
HTML becomes plain text. When the REST API is switched off or hidden (401/403/404, or HTML where JSON
should be), the blog is read from its RSS feeds instead (``feed.v1``: ``<url>/feed/`` and
``<url>/comments/feed/``, WordPress paging): same uids, fewer fields. Trashed posts vanish from both
without a trace, so deletions on WordPress are not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from edumine import registry
from edumine.miners.base import BadRecord, ReadStats, Rejected, parse_time_text, record_builder, time_bounds
from edumine.miners.feeds import FeedSource
from edumine.miners.html_text import html_to_text
from edumine.miners.live import (FetchFailed, HttpClient, HttpStatusError, LiveSource, LiveSourceConfig,
                                 MalformedReply, call_with_retries, classify_http, host_of)
from edumine.schema import UTC, from_epoch, make_uid

log = logging.getLogger(__name__)
API = "/wp-json/wp/v2"


class WordPressConfig(LiveSourceConfig):
    kind: Literal["wordpress.v1"] = "wordpress.v1"
    url: str = Field(description="the blog's base URL, e.g. https://teachers.example.org")
    comments: bool = True
    platform: str = "blog"
    community: str | None = Field(None, description="lake community; default: the blog's host name")
    since: date | datetime | None = Field(None, description="first run: posts from this time on")
    per_page: int = Field(100, ge=1, le=100)
    max_pages: int = Field(100, ge=1, description="pages read per run and endpoint")
    feed_fallback: bool = Field(True, description="read the RSS feeds when the REST API is unavailable")
    feed_urls: list[str] | None = Field(None, description="default: <url>/feed/ and <url>/comments/feed/")
    timeout: float = Field(30.0, gt=0)
    user_agent: str = "edumine/0.1 (research; educator communities)"

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("give the blog's base URL with http:// or https://")
        return value.rstrip("/")


def _later(current: float | None, record: dict, item: dict) -> float | None:
    modified = item.get("modified_gmt")
    value = parse_time_text(modified + "Z", "modified_gmt") if modified else record["created_at"].timestamp()
    return value if current is None else max(current, value)


class _HighWaterMark:
    """The newest creation time read so far and the ids created in that second (WordPress dates have seconds)."""

    def __init__(self, newest: float | None, ids_at_newest: list) -> None:
        self.newest, self.ids = newest, set(ids_at_newest)
        self._stored = (newest, frozenset(ids_at_newest))

    def seen(self, created: float, item_id: Any) -> bool:
        """Read by an earlier run (at or before the stored mark)."""
        newest, ids = self._stored
        return newest is not None and (created < newest or (created == newest and item_id in ids))

    def advance(self, created: float, item_id: Any) -> None:
        if self.newest is None or created > self.newest:
            self.newest, self.ids = created, {item_id}
        elif created == self.newest:
            self.ids.add(item_id)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


@registry.sources.register("wordpress.v1")
class WordPressSource(LiveSource):
    Config = WordPressConfig
    kind = "wordpress.v1"

    def __init__(self, *, url: str, comments: bool = True, platform: str = "blog", community: str | None = None,
                 since: Any = None, per_page: int = 100, max_pages: int = 100, feed_fallback: bool = True,
                 feed_urls: list[str] | None = None, timeout: float = 30.0, user_agent: str = "",
                 **live: Any) -> None:
        super().__init__(**live)
        self._live = live
        self.url = url
        self.comments = comments
        self.platform = platform
        self.host = host_of(url)
        self.community = community or self.host
        self.since = since
        self.per_page = per_page
        self.max_pages = max_pages
        self.feed_fallback = feed_fallback
        self.feed_urls = feed_urls or [f"{url}/feed/"] + ([f"{url}/comments/feed/"] if comments else [])
        self.timeout = timeout
        self.user_agent = user_agent
        self._feed: FeedSource | None = None

    def identity(self) -> dict[str, Any]:
        return {"host": self.host, "url": self.url, "platform": self.platform}

    def commit(self) -> None:
        super().commit()
        if self._feed is not None:
            self._feed.commit()

    def notes(self) -> dict[str, Any]:
        if self._feed is not None:
            self._notes["feed"] = self._feed.notes()
        return self._notes

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        client = HttpClient(self.url, source=self, timeout=self.timeout, user_agent=self.user_agent)
        counts = stats.file(self.url)
        try:
            reason = self._rest_unavailable(client)
            if reason is None:
                self._notes["api"] = "rest"
                yield from self._rest(client, counts)
                return
        except FetchFailed as exc:
            counts["failed"] += 1
            self._notes["failed"] = str(exc)
            log.error("wordpress %s failed and keeps its previous marks: %s", self.url, exc)
            yield Rejected(self.url, "fetch_failed", str(exc))
            return
        finally:
            client.close()
        if not self.feed_fallback:
            yield Rejected(self.url, "no_rest_api", f"{reason}; set feed_fallback: true to read its feeds")
            return
        log.info("wordpress %s: %s; reading its feeds %s", self.url, reason, self.feed_urls)
        self._notes.update(api="feed", fallback_reason=reason)
        self._feed = FeedSource(urls=self.feed_urls, platform=self.platform, community=self.community,
                                since=self.since, wordpress_paging=True, max_pages=self.max_pages,
                                timeout=self.timeout, user_agent=self.user_agent, **self._live)
        self._feed.bind(lake=self._lake, run_id=self._run_id, label=self._label)
        yield from self._feed.read(stats)

    def _rest_unavailable(self, client: HttpClient) -> str | None:
        """Why the REST API cannot be used (None when it can). Transient failures are retried, then raise."""
        def probe() -> Any:
            response = client._get(f"{API}/posts", {"per_page": 1, "_fields": "id"})
            try:
                return response.json()
            except ValueError:
                return MalformedReply("the REST API answered with something other than JSON")

        def classify(exc: BaseException) -> tuple[bool, float | None]:
            return classify_http(exc) if not isinstance(exc, HttpStatusError) or exc.status not in \
                (401, 403, 404, 410) else (False, None)

        try:
            answer = call_with_retries(probe, what="REST probe", backoff=self.backoff, classify=classify,
                                       on_retry=self._count_retry)
        except FetchFailed as exc:
            if isinstance(exc.__cause__, HttpStatusError) and exc.__cause__.status in (401, 403, 404, 410):
                return f"the REST API answered HTTP {exc.__cause__.status}"
            raise
        if isinstance(answer, MalformedReply):
            return str(answer)
        if not isinstance(answer, list):
            return f"the REST API answered {answer.get('code') if isinstance(answer, dict) else type(answer).__name__}"
        return None

    # -- REST -------------------------------------------------------------------------------------
    def _rest(self, client: HttpClient, counts: Any) -> Iterator[dict | Rejected]:
        mark = self.marks.get("rest", {})
        modified_newest = mark.get("modified_newest")  # the blog's own clock: edits after it are re-read
        low = time_bounds(self.since, None)[0] if self.since is not None else None
        new_mark = dict(mark)
        seen_posts: set[int] = set()
        posts = _HighWaterMark(mark.get("posts_newest"), mark.get("posts_ids_at_newest", []))
        for entry in self._new_since(client, "posts", {"_embed": "author"}, self._post, posts, low):
            if isinstance(entry, Rejected):
                yield entry
                continue
            item, record = entry
            seen_posts.add(item["id"])
            modified_newest = _later(modified_newest, record, item)
            counts["posts"] += 1
            yield record
        if mark.get("modified_newest") is not None:
            edited = {"orderby": "modified", "order": "asc", "_embed": "author",
                      "modified_after": _iso(mark["modified_newest"])}
            for item, retrieved in self._pages(client, f"{API}/posts", edited, "edited posts"):
                if item["id"] in seen_posts:
                    continue
                try:
                    record = self._post(item, retrieved)
                except BadRecord as exc:
                    yield self._rejected("posts", item, exc)
                    continue
                modified_newest = _later(modified_newest, record, item)
                counts["updated"] += 1
                yield record
        new_mark.update(posts_newest=posts.newest, posts_ids_at_newest=sorted(posts.ids),
                        modified_newest=modified_newest)
        if self.comments:
            comments = _HighWaterMark(mark.get("comments_newest"), mark.get("comments_ids_at_newest", []))
            for entry in self._new_since(client, "comments", {}, self._comment, comments, low):
                if not isinstance(entry, Rejected):
                    counts["comments"] += 1
                    entry = entry[1]
                yield entry
            new_mark.update(comments_newest=comments.newest, comments_ids_at_newest=sorted(comments.ids))
        self._pending["rest"] = new_mark

    def _new_since(self, client: HttpClient, endpoint: str, extra: dict, parse: Any, mark: _HighWaterMark,
                   low: float | None) -> Iterator[tuple[dict, dict] | Rejected]:
        """(item, record) for every item created after ``mark``, oldest first; ``mark`` advances past each."""
        after = mark.newest if mark.newest is not None else low
        params: dict[str, Any] = {"orderby": "date", "order": "asc", **extra}
        if after is not None:
            params["after"] = _iso(after - 1)  # `after` is exclusive: ids at the mark's second are skipped below
        for item, retrieved in self._pages(client, f"{API}/{endpoint}", params, endpoint):
            try:
                record = parse(item, retrieved)
            except BadRecord as exc:
                yield self._rejected(endpoint, item, exc)
                continue
            created = record["created_at"].timestamp()
            if mark.seen(created, item["id"]):
                continue
            yield item, record
            mark.advance(created, item["id"])

    def _rejected(self, endpoint: str, item: dict, exc: BadRecord) -> Rejected:
        title = item.get("title")
        raw = {"id": item.get("id"), "link": item.get("link"), "date_gmt": item.get("date_gmt"),
               "title": title.get("rendered") if isinstance(title, dict) else title,
               "author_name": item.get("author_name")}
        return Rejected(f"{self.url}{API}/{endpoint}/{item.get('id')}", exc.reason, exc.detail, raw,
                        personal=("author_name",))

    def _pages(self, client: HttpClient, path: str, params: dict, what: str) -> Iterator[tuple[dict, datetime]]:
        page, total = 1, None
        while page <= self.max_pages and (total is None or page <= total):
            data, headers = client.get_json(path, {**params, "per_page": self.per_page, "page": page},
                                            what=f"{what} page {page}")
            if not isinstance(data, list):
                raise FetchFailed(f"{what} page {page}: expected a list, got {str(data)[:200]}")
            retrieved = datetime.now(UTC)
            for item in data:
                yield item, retrieved
            total = int(headers.get("x-wp-totalpages") or (page if len(data) < self.per_page else page + 1))
            if not data:
                break
            page += 1
        if total is not None and page <= total:
            self._notes.setdefault("window_truncated", []).append(what)

    @record_builder
    def _post(self, item: dict, retrieved: datetime) -> dict[str, Any]:
        if "id" not in item or not item.get("date_gmt"):
            raise BadRecord("missing_field", "a post without id or date_gmt")
        created = from_epoch(parse_time_text(item["date_gmt"] + "Z", "date_gmt"))
        modified = item.get("modified_gmt")
        edited = from_epoch(parse_time_text(modified + "Z", "modified_gmt")) if modified else None
        authors = (item.get("_embedded") or {}).get("author") or [{}]
        uid = make_uid(self.platform, "post", f"{self.host}:{item['id']}")
        return {
            "uid": uid, "platform": self.platform, "community": self.community, "kind": "post",
            "id": f"{self.host}:{item['id']}", "parent_uid": None, "thread_uid": uid,
            "author": authors[0].get("slug") or authors[0].get("name") or
            (f"wp-user-{item['author']}" if item.get("author") else None),
            "created_at": created, "title": html_to_text((item.get("title") or {}).get("rendered")),
            "body": html_to_text((item.get("content") or {}).get("rendered")), "url": item.get("link"),
            "link_url": None, "flair": None, "score": None, "num_comments": None, "removal": None,
            "is_edited": edited is not None and edited - created > timedelta(minutes=1),
            "edited_at": edited if edited is not None and edited - created > timedelta(minutes=1) else None,
            "retrieved_at": retrieved,
        }

    @record_builder
    def _comment(self, item: dict, retrieved: datetime) -> dict[str, Any]:
        if "id" not in item or not item.get("date_gmt") or not item.get("post"):
            raise BadRecord("missing_field", "a comment without id, date_gmt or post")
        thread = make_uid(self.platform, "post", f"{self.host}:{item['post']}")
        parent = make_uid(self.platform, "comment", f"{self.host}:{item['parent']}") if item.get("parent") else thread
        return {
            "uid": make_uid(self.platform, "comment", f"{self.host}:{item['id']}"), "platform": self.platform,
            "community": self.community, "kind": "comment", "id": f"{self.host}:{item['id']}",
            "parent_uid": parent, "thread_uid": thread, "author": item.get("author_name"),
            "created_at": from_epoch(parse_time_text(item["date_gmt"] + "Z", "date_gmt")), "title": None,
            "body": html_to_text((item.get("content") or {}).get("rendered")), "url": item.get("link"),
            "link_url": None, "flair": None, "score": None, "num_comments": None, "removal": None,
            "is_edited": False, "edited_at": None, "retrieved_at": retrieved,
        }

