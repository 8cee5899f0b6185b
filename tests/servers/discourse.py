"""A Discourse double: ``/posts.json``, ``/latest.json`` (and per category), ``/t/<id>.json``,
``/t/<id>/posts.json``, ``/categories.json``, with Discourse's shapes (``topic_list.more_topics_url``,
``post_stream.posts`` holding the first ``chunk`` posts and ``post_stream.stream`` all ids, ``cooked`` HTML
with mentions, quotes and emoji, ``user_deleted`` posts)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone

from servers import Double, Reply, Request, not_found


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class DPost:
    id: int
    topic: "Topic"
    number: int
    username: str
    cooked: str
    created: float
    updated: float
    reply_to: int | None = None
    version: int = 1
    user_deleted: bool = False
    likes: int = 0


@dataclass
class Topic:
    id: int
    title: str
    slug: str
    category_id: int
    created: float
    posts: list[DPost] = field(default_factory=list)
    pinned: bool = False

    @property
    def bumped(self) -> float:
        return max(p.created for p in self.posts)


class DiscourseDouble(Double):
    CATEGORIES = [(5, "lesson-planning", "Lesson planning"), (7, "new-teachers", "New teachers"),
                  (9, "site-feedback", "Site feedback")]

    def __init__(self, *, per_page: int = 30, chunk: int = 20) -> None:
        super().__init__()
        self.per_page, self.chunk = per_page, chunk
        self.topics: dict[int, Topic] = {}
        self.posts: dict[int, DPost] = {}
        self._topic_ids = itertools.count(100)
        self._post_ids = itertools.count(1000)
        self.clock = 1_700_000_000.0

    def tick(self, seconds: float = 60.0) -> float:
        self.clock += seconds
        return self.clock

    def add_topic(self, title: str, body_html: str, username: str = "ms_rivera", category_id: int = 5) -> Topic:
        topic = Topic(next(self._topic_ids), title, title.lower().replace(" ", "-")[:40], category_id, self.tick())
        self.topics[topic.id] = topic
        self.reply(topic, body_html, username)
        return topic

    def reply(self, topic: Topic, body_html: str, username: str = "mr_okafor", reply_to: int | None = None) -> DPost:
        now = self.tick(30)
        post = DPost(next(self._post_ids), topic, len(topic.posts) + 1, username, body_html, now, now, reply_to)
        topic.posts.append(post)
        self.posts[post.id] = post
        return post

    def edit(self, post: DPost, body_html: str) -> None:
        post.cooked, post.version, post.updated = body_html, post.version + 1, self.tick(5)

    def user_delete(self, post: DPost) -> None:
        post.cooked, post.user_deleted, post.updated = "<p>(post deleted by author)</p>", True, self.tick(5)

    def seed(self, topics: int, replies: int) -> list[Topic]:
        made = []
        for n in range(topics):
            topic = self.add_topic(f"Ideas for teaching fractions {n}",
                                   f"<p>I teach 4th grade and my students struggle with <strong>fractions</strong> "
                                   f"&amp; ratios. Any ideas? :{n}</p>", category_id=self.CATEGORIES[n % 2][0])
            for k in range(replies):
                reply_to = 1 if k % 2 else None
                self.reply(topic, f'<aside class="quote" data-username="ms_rivera"><div class="title">ms_rivera:'
                                  f'</div><blockquote><p>fractions</p></blockquote></aside><p>Try pizza models, '
                                  f'<a class="mention" href="/u/ms_rivera">@ms_rivera</a> <img class="emoji" '
                                  f'alt=":pizza:"> reply {k}</p>', username=f"teacher{k % 4}", reply_to=reply_to)
            made.append(topic)
        return made

    # -- HTTP -------------------------------------------------------------------------------------
    def route(self, request: Request) -> Reply:
        path = request.path
        query = {k: v[-1] for k, v in request.query.items()}
        if path == "/posts.json":
            posts = sorted(self.posts.values(), key=lambda p: -p.id)[:50]
            return Reply(200, {"latest_posts": [self._post(p, with_topic=True) for p in posts]})
        if path == "/categories.json":
            return Reply(200, {"category_list": {"categories": [
                {"id": i, "slug": s, "name": n, "topic_count": 0} for i, s, n in self.CATEGORIES]}})
        if path == "/latest.json":
            return self._latest(None, int(query.get("page", 0)))
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[0] == "c" and parts[3] == "l" and parts[4] == "latest.json":
            return self._latest(int(parts[2]), int(query.get("page", 0)))
        if len(parts) == 2 and parts[0] == "t" and parts[1].endswith(".json"):
            topic = self.topics.get(int(parts[1][:-5]))
            return not_found(path) if topic is None else self._topic(topic)
        if len(parts) == 3 and parts[0] == "t" and parts[2] == "posts.json":
            wanted = {int(x) for x in request.query.get("post_ids[]", [])}
            return Reply(200, {"post_stream": {"posts": [self._post(self.posts[i]) for i in sorted(wanted)
                                                         if i in self.posts]}, "id": int(parts[1])})
        return not_found(path)

    def _latest(self, category: int | None, page: int) -> Reply:
        topics = [t for t in self.topics.values() if category is None or t.category_id == category]
        topics.sort(key=lambda t: (not t.pinned, -t.bumped))
        chunk = topics[page * self.per_page:(page + 1) * self.per_page]
        more = (page + 1) * self.per_page < len(topics)
        base = "/latest" if category is None else f"/c/x/{category}/l/latest"
        return Reply(200, {
            "users": [{"id": 1, "username": "ms_rivera", "avatar_template": "/a/{size}.png"}],
            "topic_list": {"can_create_topic": False, "per_page": self.per_page,
                           **({"more_topics_url": f"{base}?page={page + 1}"} if more else {}),
                           "topics": [{"id": t.id, "title": t.title, "fancy_title": t.title, "slug": t.slug,
                                       "posts_count": len(t.posts), "reply_count": len(t.posts) - 1,
                                       "created_at": iso(t.created), "last_posted_at": iso(t.bumped),
                                       "bumped": True, "bumped_at": iso(t.bumped), "pinned": t.pinned,
                                       "category_id": t.category_id, "views": 10, "like_count": 0}
                                      for t in chunk]}})

    def _topic(self, topic: Topic) -> Reply:
        return Reply(200, {"id": topic.id, "title": topic.title, "fancy_title": topic.title, "slug": topic.slug,
                           "posts_count": len(topic.posts), "created_at": iso(topic.created),
                           "category_id": topic.category_id, "last_posted_at": iso(topic.bumped),
                           "post_stream": {"posts": [self._post(p) for p in topic.posts[: self.chunk]],
                                           "stream": [p.id for p in topic.posts]}})

    def _post(self, post: DPost, with_topic: bool = False) -> dict:
        data = {"id": post.id, "name": post.username.title(), "username": post.username,
                "avatar_template": "/a/{size}.png", "created_at": iso(post.created), "cooked": post.cooked,
                "post_number": post.number, "post_type": 1, "updated_at": iso(post.updated),
                "reply_count": 0, "reply_to_post_number": post.reply_to, "topic_id": post.topic.id,
                "topic_slug": post.topic.slug, "version": post.version, "user_deleted": post.user_deleted,
                "deleted_at": None, "hidden": False, "actions_summary": [{"id": 2, "count": post.likes}]}
        if with_topic:
            data.update(topic_title=post.topic.title, category_id=post.topic.category_id)
        return data
