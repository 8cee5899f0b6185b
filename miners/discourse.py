"""``discourse.v1``: a Discourse forum through its public JSON API, incrementally.

``/posts.json`` (the newest posts site-wide) tells at once whether anything was posted since the last
run's highest post id. If so, ``/latest.json`` (or ``/c/<slug>/<id>/l/latest.json`` per configured
category) is walked page by page, newest bump first, down to the stored bump time; each bumped topic is
read with ``/t/<id>.json`` and, for posts beyond the first chunk, ``/t/<id>/posts.json?post_ids[]=``.
Posts newer than the stored post id, or edited or deleted after the newest ``updated_at`` read so far (the
forum's clock, not ours), are yielded; edits are seen when their topic is read, i.e. bumped by a new post
(Discourse does not bump topics on edits). The topic's first post is yielded
as a ``post`` (with the topic title, the category as flair), replies as ``comment`` s whose parent is
the post they reply to. Deleted posts (``deleted_at``, ``user_deleted``) lose their text. ``cooked``
HTML becomes plain text (``miners/html_text.py``). A topic that fails after retries is reported and the
marks stay where they were, so the next run reads it again; the other topics land.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from edumine import registry
from edumine.miners.base import BadRecord, ReadStats, Rejected, parse_time_text, record_builder, time_bounds
from edumine.miners.html_text import html_to_text
from edumine.miners.live import FetchFailed, HttpClient, LiveSource, LiveSourceConfig, host_of
from edumine.schema import UTC, from_epoch, make_uid

log = logging.getLogger(__name__)
CHUNK = 20  # post ids per /t/<id>/posts.json request, as Discourse's own client asks


class DiscourseConfig(LiveSourceConfig):
    kind: Literal["discourse.v1"] = "discourse.v1"
    url: str = Field(description="the forum's base URL, e.g. https://forum.example.org")
    categories: list[str] | None = Field(None, description="category slugs or ids to collect; default: all")
    community: str | None = Field(None, description="lake community; default: the forum's host name")
    since: date | datetime | None = Field(None, description="first run: topics bumped from this time on")
    max_topics: int = Field(2000, ge=1, description="topics read per run (and category)")
    timeout: float = Field(30.0, gt=0)
    user_agent: str = "edumine/0.1 (research; educator communities)"
    api_username: str | None = Field(None, description="for forums that need an API key (key: $DISCOURSE_API_KEY)")
    api_key: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("give the forum's base URL with http:// or https://")
        return value.rstrip("/")


@registry.sources.register("discourse.v1")
class DiscourseSource(LiveSource):
    Config = DiscourseConfig
    kind = "discourse.v1"
    platform = "discourse"

    def __init__(self, *, url: str, categories: list[str] | None = None, community: str | None = None,
                 since: Any = None, max_topics: int = 2000, timeout: float = 30.0, user_agent: str = "",
                 api_username: str | None = None, api_key: SecretStr | None = None, **live: Any) -> None:
        super().__init__(**live)
        self.url = url
        self.categories = categories
        self.host = host_of(url)
        self.community = community or self.host
        self.since = since
        self.max_topics = max_topics
        self.timeout = timeout
        self.user_agent = user_agent
        self.api_username = api_username
        self.api_key = api_key

    def identity(self) -> dict[str, Any]:
        return {"host": self.host, "url": self.url, "categories": sorted(self.categories or [])}

    def _client(self) -> HttpClient:
        headers = {}
        key = self.api_key.get_secret_value() if self.api_key else os.environ.get("DISCOURSE_API_KEY")
        if key and self.api_username:
            headers = {"Api-Key": key, "Api-Username": self.api_username}
        return HttpClient(self.url, source=self, timeout=self.timeout, user_agent=self.user_agent, headers=headers)

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        client = self._client()
        counts = stats.file(self.url)
        try:
            yield from self._read(client, counts)
        except FetchFailed as exc:
            self._notes["failed"] = str(exc)
            counts["failed"] += 1
            log.error("discourse %s failed and keeps its previous marks: %s", self.url, exc)
            yield Rejected(self.url, "fetch_failed", str(exc))
        finally:
            client.close()

    def _read(self, client: HttpClient, counts: Any) -> Iterator[dict | Rejected]:
        latest, _ = client.get_json("/posts.json", what="latest posts")
        newest_id = max((int(p["id"]) for p in latest.get("latest_posts", [])), default=0)
        categories = self._categories(client)
        names = {c["id"]: c.get("name") for c in categories.values()}
        feeds = [("all", "/latest.json")] if not self.categories else \
            [(str(c["id"]), f"/c/{c['slug']}/{c['id']}/l/latest.json") for c in self._wanted(categories)]
        for key, path in feeds:
            mark = self.marks.get(key, {})
            if mark and newest_id and newest_id <= mark.get("last_post_id", 0):
                counts["unchanged_probes"] += 1
                self._notes.setdefault("feeds", {})[key] = {"new_posts": 0}
                continue
            yield from self._feed(client, key, path, mark, names, counts)

    def _categories(self, client: HttpClient) -> dict[str, dict]:
        data, _ = client.get_json("/categories.json", what="categories")
        found = {}
        for category in data.get("category_list", {}).get("categories", []):
            found[str(category["id"])] = category
            found[str(category.get("slug"))] = category
        return found

    def _wanted(self, categories: dict[str, dict]) -> list[dict]:
        missing = [c for c in self.categories or [] if str(c) not in categories]
        if missing:
            raise FetchFailed(f"no category {missing} on {self.url}; known: "
                              f"{sorted({c['slug'] for c in categories.values()})}")
        return [categories[str(c)] for c in self.categories or []]

    def _feed(self, client: HttpClient, key: str, path: str, mark: dict, names: dict, counts: Any) -> Iterator[dict]:
        bumped_mark = _epoch(mark.get("bumped_at"))
        last_post_id = int(mark.get("last_post_id", 0))
        low = time_bounds(self.since, None)[0] if self.since is not None and bumped_mark is None else None
        # Edits are found by the server's own clock (the newest `updated_at` read so far), not ours.
        since_run = _epoch(mark.get("updated_at"))
        max_updated = since_run
        topics: list[dict] = []
        page = 0
        reached = False
        while len(topics) < self.max_topics and not reached:
            data, _ = client.get_json(path, {"page": page} if page else None, what=f"{path} page {page}")
            listed = data.get("topic_list", {}).get("topics", [])
            for topic in listed:
                bumped = _epoch(topic.get("bumped_at") or topic.get("last_posted_at"))
                if topic.get("pinned") and bumped is not None and bumped_mark is not None and bumped <= bumped_mark:
                    continue  # pinned topics head the list whatever their bump time
                if (bumped_mark is not None and bumped is not None and bumped <= bumped_mark) or \
                        (low is not None and bumped is not None and bumped < low):
                    reached = True
                    break
                topics.append(topic)
            if not data.get("topic_list", {}).get("more_topics_url") or not listed:
                break
            page += 1
        truncated = not reached and len(topics) >= self.max_topics
        failed = 0
        max_post = last_post_id
        max_bumped = bumped_mark
        for topic in topics:
            try:
                posts = self._topic_posts(client, int(topic["id"]))
            except FetchFailed as exc:
                failed += 1
                counts["topics_failed"] += 1
                log.error("discourse topic %s failed: %s", topic["id"], exc)
                yield Rejected(f"{self.url}/t/{topic['id']}", "fetch_failed", str(exc))  # type: ignore[misc]
                continue
            counts["topics"] += 1
            retrieved = datetime.now(UTC)
            topic_data, stream_posts = posts
            first_id = topic_data["post_stream"]["stream"][0] if topic_data["post_stream"].get("stream") else None
            by_number = {p["post_number"]: p["id"] for p in stream_posts}
            for post in stream_posts:
                max_post = max(max_post, int(post["id"]))
                edited = _epoch(post.get("updated_at"))
                if edited is not None:
                    max_updated = edited if max_updated is None else max(max_updated, edited)
                is_new = int(post["id"]) > last_post_id
                is_edited = since_run is not None and edited is not None and edited > since_run and \
                    (int(post.get("version") or 1) > 1 or bool(post.get("user_deleted") or post.get("deleted_at")))
                if not (is_new or is_edited or not self.incremental):
                    continue
                try:
                    record = self._record(topic_data, post, first_id, by_number, names, retrieved)
                except BadRecord as exc:
                    yield Rejected(f"{self.url}/p/{post.get('id')}", exc.reason, exc.detail,  # type: ignore[misc]
                                   repr(post)[:2000])
                    continue
                counts["posts" if is_new else "updated"] += 1
                yield record
            bumped = _epoch(topic.get("bumped_at") or topic.get("last_posted_at"))
            if bumped is not None:
                max_bumped = bumped if max_bumped is None else max(max_bumped, bumped)
        note = {"topics": len(topics), "window_truncated": truncated, "topics_failed": failed}
        self._notes.setdefault("feeds", {})[key] = note
        if failed:
            return  # keep the old marks: the failed topics are read again next run
        self._pending[key] = {"bumped_at": from_epoch(max_bumped).isoformat() if max_bumped else None,
                              "last_post_id": max_post,
                              "updated_at": from_epoch(max_updated).isoformat() if max_updated else None}

    def _topic_posts(self, client: HttpClient, topic_id: int) -> tuple[dict, list[dict]]:
        topic, _ = client.get_json(f"/t/{topic_id}.json", what=f"topic {topic_id}")
        stream = topic.get("post_stream", {})
        posts = {p["id"]: p for p in stream.get("posts", [])}
        missing = [pid for pid in stream.get("stream", []) if pid not in posts]
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start:start + CHUNK]
            more, _ = client.get_json(f"/t/{topic_id}/posts.json", [("post_ids[]", pid) for pid in chunk],
                                      what=f"topic {topic_id} posts")
            for post in more.get("post_stream", {}).get("posts", []):
                posts[post["id"]] = post
        return topic, sorted(posts.values(), key=lambda p: p.get("post_number", 0))

    @record_builder
    def _record(self, topic: dict, post: dict, first_id: int | None, by_number: dict, names: dict,
                retrieved: datetime) -> dict[str, Any]:
        if "id" not in post or "created_at" not in post:
            raise BadRecord("missing_field", "a post without id or created_at")
        created = from_epoch(parse_time_text(post["created_at"], "created_at"))
        is_first = post.get("post_number") == 1
        first_uid = make_uid("discourse", "post", f"{self.host}:{first_id or post['id']}")
        kind = "post" if is_first else "comment"
        uid = first_uid if is_first else make_uid("discourse", "comment", f"{self.host}:{post['id']}")
        parent_uid = None
        if not is_first:
            reply_to = by_number.get(post.get("reply_to_post_number"))
            parent_uid = first_uid if reply_to in (None, first_id) else \
                make_uid("discourse", "comment", f"{self.host}:{reply_to}")
        deleted = bool(post.get("deleted_at") or post.get("user_deleted"))
        version = int(post.get("version") or 1)
        likes = post.get("like_count")
        if likes is None:
            likes = next((a.get("count", 0) for a in post.get("actions_summary", []) if a.get("id") == 2), None)
        slug = topic.get("slug") or post.get("topic_slug") or "-"
        return {
            "uid": uid, "platform": "discourse", "community": self.community, "kind": kind,
            "id": f"{self.host}:{post['id']}", "parent_uid": parent_uid, "thread_uid": first_uid,
            "author": post.get("username"), "created_at": created,
            "title": topic.get("title") if is_first else None,
            "body": None if deleted else html_to_text(post.get("cooked")),
            "url": f"{self.url}/t/{slug}/{topic['id']}/{post.get('post_number', 1)}", "link_url": None,
            "flair": names.get(topic.get("category_id")) or (str(topic["category_id"]) if topic.get("category_id")
                                                             else None),
            "score": likes, "num_comments": max(int(topic.get("posts_count", 1)) - 1, 0) if is_first else None,
            "removal": "deleted" if deleted else None, "is_edited": version > 1,
            "edited_at": from_epoch(parse_time_text(post["updated_at"], "updated_at"))
            if version > 1 and post.get("updated_at") else None,
            "retrieved_at": retrieved,
        }


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return parse_time_text(value, "time")
    except BadRecord:
        return None
