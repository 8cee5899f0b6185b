"""A Reddit double that speaks enough of the OAuth API for praw: token, listings, threads, morechildren.

Payloads follow Reddit's shapes (``Listing`` / ``t3`` / ``t1`` / ``more`` things, ``raw_json=1`` text,
``edited`` false or an epoch, ``[deleted]`` authors and bodies, ``removed_by_category``). Listings
(``/r/{sub}/new``, ``/top`` and the comment stream ``/r/{sub}/comments``) stop at ``listing_cap`` items like
Reddit's ~1,000; threads inline ``inline_top`` top-level comments and
``inline_depth`` levels, the rest behind ``more`` stubs (with children) and "continue this thread"
stubs (count 0), as Reddit does. Every API reply carries all three ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import base64
import csv
import itertools
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from servers import Double, Reply, Request, not_found

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "reddit-teaching-2023" / "teaching_posts.csv"


def b36(number: int) -> str:
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = chars[rest] + text
        if number == 0:
            return text


@dataclass
class Comment:
    id: str
    post: "Post"
    parent: str                  # fullname: t3_... or t1_...
    author: str | None
    body: str
    created_utc: float
    score: int = 1
    edited: float | bool = False
    replies: list["Comment"] = field(default_factory=list)


@dataclass
class Post:
    id: str
    subreddit: str
    title: str
    selftext: str
    author: str | None
    created_utc: float
    score: int = 1
    edited: float | bool = False
    removed_by_category: str | None = None
    flair: str | None = None
    comments: list[Comment] = field(default_factory=list)

    def all_comments(self) -> list[Comment]:
        out: list[Comment] = []
        stack = list(reversed(self.comments))
        while stack:
            comment = stack.pop()
            out.append(comment)
            stack.extend(reversed(comment.replies))
        return out


class RedditDouble(Double):
    def __init__(self, *, client_id: str = "test-client", client_secret: str = "test-secret",
                 username: str | None = None, password: str | None = None, listing_cap: int = 1000,
                 inline_top: int = 3, inline_depth: int = 3, ratelimit_budget: int = 600,
                 ratelimit_reset: int = 1, first_id: int = 1_000_000) -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password
        self.listing_cap = listing_cap
        self.inline_top, self.inline_depth = inline_top, inline_depth
        self.ratelimit_budget, self.ratelimit_reset = ratelimit_budget, ratelimit_reset
        self._used = 0
        self.tokens: set[str] = set()
        self.posts: dict[str, Post] = {}
        self.comments: dict[str, Comment] = {}
        self._ids = itertools.count(first_id)
        self.clock = 1_700_000_000.0

    # -- the world --------------------------------------------------------------------------------
    def tick(self, seconds: float = 60.0) -> float:
        self.clock += seconds
        return self.clock

    def add_post(self, subreddit: str, title: str, body: str, author: str | None = "teacher_a",
                 created: float | None = None, score: int = 1) -> Post:
        post = Post(b36(next(self._ids)), subreddit, title, body, author, created or self.tick(), score)
        self.posts[post.id] = post
        return post

    def add_comment(self, post: Post, body: str, author: str | None = "teacher_b", parent: Comment | None = None,
                    created: float | None = None) -> Comment:
        comment = Comment(b36(next(self._ids)), post, f"t1_{parent.id}" if parent else f"t3_{post.id}", author,
                          body, created or self.tick(10))
        (parent.replies if parent else post.comments).append(comment)
        self.comments[comment.id] = comment
        return comment

    def edit_post(self, post: Post, body: str) -> None:
        post.selftext = body
        post.edited = self.tick(5)

    def delete_post(self, post: Post) -> None:
        post.author, post.selftext, post.removed_by_category = None, "[deleted]", "deleted"

    def delete_comment(self, comment: Comment) -> None:
        comment.author, comment.body = None, "[deleted]"

    def seed(self, subreddit: str, posts: int, comments_per_post: int = 0, *, start: int = 0) -> list[Post]:
        """Posts with real r/teaching titles and texts (from the shared corpus), oldest first."""
        rows = _corpus_rows()
        made = []
        for n in range(posts):
            title, body = rows[(start + n) % len(rows)]
            post = self.add_post(subreddit, title, body, author=f"teacher_{(start + n) % 7}")
            for k in range(comments_per_post):
                reply_text = rows[(start + n + k + 1) % len(rows)][1][:400] or "Same here."
                parent = post.comments[-1] if k % 3 == 2 and post.comments else None
                self.add_comment(post, reply_text, author=f"teacher_{(n + k) % 5}", parent=parent)
            made.append(post)
        return made

    # -- HTTP -------------------------------------------------------------------------------------
    def default_headers(self) -> dict[str, str]:
        return {}

    def _ratelimit(self) -> dict[str, str]:
        self._used += 1
        remaining = max(self.ratelimit_budget - self._used, 0)
        headers = {"x-ratelimit-remaining": f"{remaining:.1f}", "x-ratelimit-used": str(self._used),
                   "x-ratelimit-reset": str(self.ratelimit_reset)}
        if remaining == 0:
            self._used = 0  # the window refills after `reset` seconds
        return headers

    def route(self, request: Request) -> Reply:
        path = request.path.rstrip("/")
        if path == "/api/v1/access_token" and request.method == "POST":
            return self._token(request)
        token = request.headers.get("authorization", "").removeprefix("bearer ").strip()
        if token not in self.tokens:
            return Reply(401, {"message": "Unauthorized", "error": 401}, {"www-authenticate": 'Bearer realm="reddit"'})
        reply = self._api(request, path)
        reply.headers.update(self._ratelimit())
        return reply

    def _token(self, request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth != f"Basic {expected}":
            return Reply(401, {"message": "Unauthorized", "error": 401})
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        if form.get("grant_type") == "password" and (form.get("username"), form.get("password")) != \
                (self.username, self.password):
            return Reply(200, {"error": "invalid_grant"})
        token = secrets.token_hex(8)
        self.tokens.add(token)
        return Reply(200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _api(self, request: Request, path: str) -> Reply:
        parts = path.strip("/").split("/")
        query = {k: v[-1] for k, v in request.query.items()}
        if len(parts) == 3 and parts[0] == "r" and parts[2] in ("new", "top"):
            return self._listing(parts[1], parts[2], query)
        if len(parts) == 3 and parts[0] == "r" and parts[2] == "comments":
            return self._comment_listing(parts[1], query)
        if parts[0] == "comments" and len(parts) in (2, 4):
            return self._thread(parts[1], parts[3] if len(parts) == 4 else None)
        if path == "/api/morechildren" and request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(request.body).items()}
            return self._morechildren(form)
        return not_found(request.path)

    def _listing(self, subreddit: str, order: str, query: dict[str, str]) -> Reply:
        posts = [p for p in self.posts.values() if p.subreddit.lower() == subreddit.lower()]
        if not posts and subreddit.lower() not in {p.subreddit.lower() for p in self.posts.values()}:
            return Reply(302, b"", {"location": f"/subreddits/search.json?q={subreddit}"})
        key = (lambda p: (p.score, p.created_utc)) if order == "top" else (lambda p: (p.created_utc, p.id))
        posts = sorted(posts, key=key, reverse=True)[: self.listing_cap]
        limit = min(int(query.get("limit", 25)), 100)
        start = 0
        if query.get("after"):
            ids = [f"t3_{p.id}" for p in posts]
            start = ids.index(query["after"]) + 1 if query["after"] in ids else len(posts)
        page = posts[start:start + limit]
        after = f"t3_{page[-1].id}" if page and start + limit < len(posts) else None
        return Reply(200, {"kind": "Listing", "data": {"after": after, "dist": len(page), "modhash": None,
                                                       "geo_filter": "", "before": None,
                                                       "children": [self._t3(p) for p in page]}})

    def _comment_listing(self, subreddit: str, query: dict[str, str]) -> Reply:
        """``/r/{sub}/comments``: the subreddit's comments, newest first, capped like every listing."""
        comments = sorted((c for c in self.comments.values() if c.post.subreddit.lower() == subreddit.lower()),
                          key=lambda c: (c.created_utc, c.id), reverse=True)[: self.listing_cap]
        limit = min(int(query.get("limit", 25)), 100)
        start = 0
        if query.get("after"):
            ids = [f"t1_{c.id}" for c in comments]
            start = ids.index(query["after"]) + 1 if query["after"] in ids else len(comments)
        page = comments[start:start + limit]
        after = f"t1_{page[-1].id}" if page and start + limit < len(comments) else None
        children = []
        for comment in page:
            thing = self._t1(comment, 0, flat=True)
            post = comment.post
            thing["data"].update(link_title=post.title, link_author=post.author or "[deleted]",
                                 link_permalink=f"https://www.reddit.com/r/{post.subreddit}/comments/{post.id}/x/",
                                 link_url=f"https://www.reddit.com/r/{post.subreddit}/comments/{post.id}/x/",
                                 num_comments=len(post.all_comments()), over_18=False, quarantine=False)
            children.append(thing)
        return Reply(200, {"kind": "Listing", "data": {"after": after, "dist": len(page), "modhash": None,
                                                       "geo_filter": "", "before": None, "children": children}})

    def _thread(self, post_id: str, focus: str | None) -> Reply:
        post = self.posts.get(post_id)
        if post is None:
            return not_found(f"/comments/{post_id}")
        if focus is not None:
            comment = self.comments.get(focus)
            if comment is None or comment.post is not post:
                return not_found(f"/comments/{post_id}/_/{focus}")
            children = [self._t1(comment, 0)]
        else:
            children = [self._t1(c, 0) for c in post.comments[: self.inline_top]]
            rest = post.comments[self.inline_top:]
            if rest:
                ids = [c.id for top in rest for c in [top, *_descendants(top)]]
                children.append(self._more(ids, f"t3_{post.id}", len(ids), 0))
        return Reply(200, [
            {"kind": "Listing", "data": {"after": None, "dist": 1, "before": None, "children": [self._t3(post)]}},
            {"kind": "Listing", "data": {"after": None, "dist": None, "before": None, "children": children}},
        ])

    def _morechildren(self, form: dict[str, str]) -> Reply:
        wanted = [c for c in form.get("children", "").split(",") if c]
        things = [self._t1(self.comments[c], 0, flat=True) for c in wanted if c in self.comments]
        return Reply(200, {"json": {"errors": [], "data": {"things": things}}})

    # -- things -----------------------------------------------------------------------------------
    def _t3(self, post: Post) -> dict[str, Any]:
        return {"kind": "t3", "data": {
            "id": post.id, "name": f"t3_{post.id}", "subreddit": post.subreddit,
            "subreddit_name_prefixed": f"r/{post.subreddit}", "subreddit_id": "t5_2qh3l",
            "title": post.title, "selftext": post.selftext, "selftext_html": None,
            "author": post.author or "[deleted]", "author_fullname": f"t2_{post.author}" if post.author else None,
            "created_utc": post.created_utc, "created": post.created_utc, "edited": post.edited,
            "score": post.score, "ups": post.score, "downs": 0, "upvote_ratio": 0.97,
            "num_comments": len(post.all_comments()), "permalink": f"/r/{post.subreddit}/comments/{post.id}/x/",
            "url": f"https://www.reddit.com/r/{post.subreddit}/comments/{post.id}/x/", "is_self": True,
            "link_flair_text": post.flair, "removed_by_category": post.removed_by_category, "stickied": False,
            "over_18": False, "locked": False, "archived": False, "domain": f"self.{post.subreddit}",
            "retrieved_on": int(time.time()),
        }}

    def _t1(self, comment: Comment, depth: int, flat: bool = False) -> dict[str, Any]:
        data = {
            "id": comment.id, "name": f"t1_{comment.id}", "parent_id": comment.parent,
            "link_id": f"t3_{comment.post.id}", "subreddit": comment.post.subreddit, "subreddit_id": "t5_2qh3l",
            "author": comment.author or "[deleted]", "body": comment.body, "body_html": None,
            "created_utc": comment.created_utc, "created": comment.created_utc, "edited": comment.edited,
            "score": comment.score, "ups": comment.score, "depth": depth, "is_submitter": False,
            "stickied": False, "permalink": f"/r/{comment.post.subreddit}/comments/{comment.post.id}/x/{comment.id}/",
            "replies": "",
        }
        if not flat and comment.replies:
            if depth + 1 >= self.inline_depth:
                children = [self._more([], f"t1_{comment.id}", 0, depth + 1)]
            else:
                children = [self._t1(reply, depth + 1) for reply in comment.replies]
            data["replies"] = {"kind": "Listing", "data": {"after": None, "before": None, "children": children}}
        return {"kind": "t1", "data": data}

    @staticmethod
    def _more(ids: list[str], parent: str, count: int, depth: int) -> dict[str, Any]:
        return {"kind": "more", "data": {"count": count, "name": f"t1_{ids[0]}" if ids else "t1__",
                                         "id": ids[0] if ids else "_", "parent_id": parent, "depth": depth,
                                         "children": ids}}


def _descendants(comment: Comment) -> list[Comment]:
    out = []
    for reply in comment.replies:
        out.append(reply)
        out.extend(_descendants(reply))
    return out


_ROWS: list[tuple[str, str]] = []


def _corpus_rows() -> list[tuple[str, str]]:
    if not _ROWS:
        with open(CORPUS, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                title, body = (row.get("title") or "").strip(), (row.get("self_text") or "").strip()
                if title and body and len(_ROWS) < 400:
                    _ROWS.append((title, body[:1500]))
    return _ROWS
