"""A WordPress double: the REST API (``/wp-json/wp/v2/posts`` and ``/comments`` with ``after``,
``modified_after``, ``page``/``per_page``, ``X-WP-Total(Pages)``, ``_embed``), the RSS feeds (``/feed/``,
``/comments/feed/``, ``?paged=N``, 404 past the end) and a paged Atom feed (``/feed/atom/``, RFC 5005
``rel="next"``). ``rest`` switches the API: ``on``, ``404`` or ``html`` (a theme page where JSON should be)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from html import escape

from servers import Double, Reply, Request, not_found


def gmt(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def rfc822(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, tz=timezone.utc), usegmt=True)


@dataclass
class WPPost:
    id: int
    title: str
    html: str
    author: str
    date: float
    modified: float


@dataclass
class WPComment:
    id: int
    post: int
    parent: int
    author_name: str
    html: str
    date: float


class WordPressDouble(Double):
    def __init__(self, *, rest: str = "on", feed_size: int = 10) -> None:
        super().__init__()
        self.rest, self.feed_size = rest, feed_size
        self.posts: dict[int, WPPost] = {}
        self.comments: dict[int, WPComment] = {}
        self._ids = itertools.count(101)
        self.clock = 1_700_000_000.0

    def tick(self, seconds: float = 3600.0) -> float:
        self.clock += seconds
        return self.clock

    def add_post(self, title: str, html: str, author: str = "Research Team") -> WPPost:
        now = self.tick()
        post = WPPost(next(self._ids), title, html, author, now, now)
        self.posts[post.id] = post
        return post

    def add_comment(self, post: WPPost, html: str, author_name: str = "A Teacher", parent: int = 0) -> WPComment:
        comment = WPComment(next(self._ids), post.id, parent, author_name, html, self.tick(60))
        self.comments[comment.id] = comment
        return comment

    def edit(self, post: WPPost, html: str) -> None:
        post.html, post.modified = html, self.tick(120)

    def seed(self, posts: int, comments: int = 0) -> list[WPPost]:
        made = []
        for n in range(posts):
            post = self.add_post(f"Self-directed learning for teachers &#8211; part {n}",
                                 f"<p>Teachers learn on <em>social media</em> every day.</p><figure><img "
                                 f"src='x.png' alt='chart {n}'></figure><p>Survey {n}: 62% use Reddit.</p>"
                                 f"<script>track()</script>")
            for k in range(comments):
                self.add_comment(post, f"<p>Thanks for sharing &amp; summarising {k}.</p>",
                                 parent=0 if k % 2 == 0 else max(self.comments))
            made.append(post)
        return made

    # -- HTTP -------------------------------------------------------------------------------------
    def route(self, request: Request) -> Reply:
        path = request.path
        query = {k: v[-1] for k, v in request.query.items()}
        if path.startswith("/wp-json/"):
            if self.rest == "404":
                return Reply(404, "<html><body>Page not found</body></html>", content_type="text/html")
            if self.rest == "html":
                return Reply(200, "<!doctype html><html><body><h1>Welcome</h1></body></html>",
                             content_type="text/html; charset=UTF-8")
            if path.rstrip("/") == "/wp-json/wp/v2/posts":
                return self._posts(query)
            if path.rstrip("/") == "/wp-json/wp/v2/comments":
                return self._comments(query)
            return Reply(404, {"code": "rest_no_route", "message": "No route", "data": {"status": 404}})
        if path == "/feed/":
            return self._rss(sorted(self.posts.values(), key=lambda p: -p.date), int(query.get("paged", 1)), False)
        if path == "/comments/feed/":
            return self._rss(sorted(self.comments.values(), key=lambda c: -c.date), int(query.get("paged", 1)), True)
        if path == "/feed/atom/":
            return self._atom(int(query.get("page", 1)))
        return not_found(path)

    def _paged(self, items: list, query: dict[str, str], endpoint: str) -> Reply:
        per_page = int(query.get("per_page", 10))
        page = int(query.get("page", 1))
        pages = max(1, -(-len(items) // per_page))
        if page > pages:
            return Reply(400, {"code": f"rest_{endpoint}_invalid_page_number", "data": {"status": 400}})
        chunk = items[(page - 1) * per_page: page * per_page]
        return Reply(200, [self._json(item) for item in chunk],
                     {"X-WP-Total": str(len(items)), "X-WP-TotalPages": str(pages)})

    def _filter(self, items: list, query: dict[str, str], date_of, modified_of) -> list:
        if "after" in query:
            items = [i for i in items if gmt(date_of(i)) > query["after"]]
        if "modified_after" in query:
            items = [i for i in items if gmt(modified_of(i)) > query["modified_after"]]
        key = modified_of if query.get("orderby") == "modified" else date_of
        return sorted(items, key=lambda i: (key(i), i.id), reverse=query.get("order", "desc") == "desc")

    def _posts(self, query: dict[str, str]) -> Reply:
        items = self._filter(list(self.posts.values()), query, lambda p: p.date, lambda p: p.modified)
        return self._paged(items, query, "post")

    def _comments(self, query: dict[str, str]) -> Reply:
        items = self._filter(list(self.comments.values()), query, lambda c: c.date, lambda c: c.date)
        return self._paged(items, query, "comment")

    def _json(self, item: WPPost | WPComment) -> dict:
        if isinstance(item, WPPost):
            return {"id": item.id, "date": gmt(item.date), "date_gmt": gmt(item.date),
                    "modified": gmt(item.modified), "modified_gmt": gmt(item.modified), "slug": f"post-{item.id}",
                    "status": "publish", "type": "post", "link": f"{self.url}/post-{item.id}/",
                    "guid": {"rendered": f"{self.url}/?p={item.id}"}, "title": {"rendered": item.title},
                    "content": {"rendered": item.html, "protected": False},
                    "excerpt": {"rendered": item.html[:80]}, "author": 3, "categories": [1],
                    "_embedded": {"author": [{"id": 3, "name": item.author,
                                              "slug": item.author.lower().replace(" ", "-")}]}}
        return {"id": item.id, "post": item.post, "parent": item.parent, "author": 0,
                "author_name": item.author_name, "date": gmt(item.date), "date_gmt": gmt(item.date),
                "content": {"rendered": item.html}, "link": f"{self.url}/post-{item.post}/#comment-{item.id}",
                "status": "approved", "type": "comment"}

    def _rss(self, items: list, page: int, comments: bool) -> Reply:
        chunk = items[(page - 1) * self.feed_size: page * self.feed_size]
        if page > 1 and not chunk:
            return Reply(404, "<html>Not found</html>", content_type="text/html")
        entries = []
        for item in chunk:
            if comments:
                post = self.posts[item.post]
                entries.append(
                    f"<item><title>Comment on {escape(post.title)} by {escape(item.author_name)}</title>"
                    f"<link>{self.url}/post-{post.id}/#comment-{item.id}</link>"
                    f"<dc:creator><![CDATA[{item.author_name}]]></dc:creator><pubDate>{rfc822(item.date)}</pubDate>"
                    f"<guid isPermaLink=\"false\">{self.url}/?p={post.id}#comment-{item.id}</guid>"
                    f"<description><![CDATA[{item.html}]]></description>"
                    f"<content:encoded><![CDATA[{item.html}]]></content:encoded></item>")
            else:
                entries.append(
                    f"<item><title>{item.title}</title><link>{self.url}/post-{item.id}/</link>"
                    f"<dc:creator><![CDATA[{item.author}]]></dc:creator><pubDate>{rfc822(item.date)}</pubDate>"
                    f"<category><![CDATA[Research]]></category>"
                    f"<guid isPermaLink=\"false\">{self.url}/?p={item.id}</guid>"
                    f"<description><![CDATA[{item.html[:60]}]]></description>"
                    f"<content:encoded><![CDATA[{item.html}]]></content:encoded></item>")
        body = ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
                'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
                'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Teacher Research Blog</title>'
                f'<link>{self.url}</link><description>Posts</description>{"".join(entries)}</channel></rss>')
        return Reply(200, body, content_type="application/rss+xml; charset=UTF-8")

    def _atom(self, page: int) -> Reply:
        items = sorted(self.posts.values(), key=lambda p: -p.date)
        chunk = items[(page - 1) * self.feed_size: page * self.feed_size]
        more = page * self.feed_size < len(items)
        entries = "".join(
            f"<entry><title type=\"html\">{escape(p.title)}</title><id>tag:blog,2024:post-{p.id}</id>"
            f"<link rel=\"alternate\" href=\"{self.url}/post-{p.id}/\"/>"
            f"<author><name>{escape(p.author)}</name></author>"
            f"<published>{gmt(p.date)}Z</published><updated>{gmt(p.modified)}Z</updated>"
            f"<content type=\"html\">{escape(p.html)}</content></entry>" for p in chunk)
        next_link = f'<link rel="next" href="{self.url}/feed/atom/?page={page + 1}"/>' if more else ""
        body = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                f'<title>Teacher Org News</title><id>tag:blog,2024:feed</id><updated>{gmt(self.clock)}Z</updated>'
                f'<link rel="self" href="{self.url}/feed/atom/?page={page}"/>{next_link}{entries}</feed>')
        return Reply(200, body, content_type="application/atom+xml")
