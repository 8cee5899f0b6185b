"""An Arctic Shift API double: ``/api/posts/search`` and ``/api/comments/search`` as documented.

Follows ArthurHeitmann/arctic_shift ``api/README.md``: parameters ``subreddit`` / ``author`` (an ``r/`` or ``u/``
prefix is ignored), ``after`` / ``before`` (Date: epoch seconds or milliseconds, partial ISO 8601, or an offset
from now such as ``30d``), ``limit`` (1-100, default 25, or ``auto``: between 100 and 1000), ``sort``
(``asc`` | ``desc`` by ``created_utc``), ``link_id`` / ``parent_id`` for comments and ``fields``; answers
``{"data": [...]}``, or ``{"error": "..."}`` with a 400 for a bad parameter. Every answer carries
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``; a spent budget answers 429 until the reset. Objects have
the 2023+ shape (sorted keys, ``retrieved_on``; after the second retrieval ``_meta.retrieved_2nd_on`` and
``_meta.was_deleted_later``). Whether ``after`` is inclusive is not documented: ``after_inclusive`` picks one.
"""

from __future__ import annotations

import itertools
import math
import zlib
import re
import time
from typing import Any

from servers import Double, Reply, Request, not_found
from servers.reddit import _corpus_rows, b36

OFFSET = re.compile(r"^(\d+)\s*(years?|y|months?|mo|weeks?|w|days?|d|hours?|h|min|minutes?|m|s|seconds?)$")
UNIT = {"y": 365 * 86400, "mo": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1}


def _fullname(author: str) -> str:
    return f"t2_{b36(zlib.crc32(author.encode()))}"


class BadParam(ValueError):
    pass


def parse_date(text: str, now: float) -> float:
    text = text.strip()
    try:
        number = float(text)
        return number / 1000 if number > 1e11 else number
    except ValueError:
        pass
    match = OFFSET.match(text)
    if match:
        unit = match.group(2)
        key = "mo" if unit.startswith("mo") else "min" if unit.startswith("min") else unit[0]
        return now - int(match.group(1)) * UNIT[key]
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadParam(f"Invalid date: {text}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class ArcticShiftDouble(Double):
    def __init__(self, *, after_inclusive: bool = False, auto_size: int = 250, ratelimit_budget: int = 1000,
                 ratelimit_window: float = 60.0) -> None:
        super().__init__()
        self.after_inclusive = after_inclusive
        self.auto_size = auto_size
        self.ratelimit_budget, self.ratelimit_window = ratelimit_budget, ratelimit_window
        self._remaining = ratelimit_budget
        self._reset_at = 0.0             # the first request opens a window
        self.posts: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self._ids = itertools.count(30_000_000)
        self.clock = time.time() - 20 * 86400
        self.query_timeouts = 0          # the next n searches answer {"error": "Query timed out"}

    # -- the world --------------------------------------------------------------------------------
    def tick(self, seconds: float = 60.0) -> int:
        self.clock += seconds
        return int(self.clock)

    def add_post(self, subreddit: str, title: str, body: str, author: str = "teacher_a",
                 created: int | None = None) -> dict[str, Any]:
        pid = b36(next(self._ids))
        created = int(created if created is not None else self.tick())
        permalink = f"/r/{subreddit}/comments/{pid}/x/"
        post = {"author": author, "author_flair_text": None, "author_fullname": _fullname(author),
                "created_utc": created, "distinguished": None, "domain": f"self.{subreddit}", "edited": False,
                "id": pid, "is_self": True, "link_flair_text": None, "locked": False, "name": f"t3_{pid}",
                "num_comments": 0, "over_18": False, "permalink": permalink, "removed_by_category": None,
                "retrieved_on": created + 12, "score": 1, "selftext": body, "spoiler": False, "stickied": False,
                "subreddit": subreddit, "subreddit_id": "t5_2qh3l", "title": title, "upvote_ratio": 1.0,
                "url": f"https://www.reddit.com{permalink}"}
        self.posts.append(post)
        return post

    def add_comment(self, post: dict[str, Any], body: str, author: str = "teacher_b",
                    parent: dict[str, Any] | None = None, created: int | None = None) -> dict[str, Any]:
        cid = b36(next(self._ids))
        created = int(created if created is not None else self.tick(10))
        comment = {"author": author, "author_flair_text": None, "author_fullname": _fullname(author),
                   "body": body, "controversiality": 0, "created_utc": created, "distinguished": None,
                   "edited": False, "id": cid, "is_submitter": author == post["author"],
                   "link_id": f"t3_{post['id']}", "name": f"t1_{cid}",
                   "parent_id": f"t1_{parent['id']}" if parent else f"t3_{post['id']}",
                   "permalink": f"/r/{post['subreddit']}/comments/{post['id']}/x/{cid}/", "retrieved_on": created + 9,
                   "score": 1, "stickied": False, "subreddit": post["subreddit"],
                   "subreddit_id": post["subreddit_id"]}
        self.comments.append(comment)  # the archived post keeps its num_comments until the second retrieval
        return comment

    def second_retrieval(self, item: dict[str, Any], *, deleted: bool = False) -> None:
        """What Arctic Shift merges in ~36 hours later: ``_meta``, and ``was_deleted_later`` for a deletion."""
        meta = {"retrieved_2nd_on": int(item["created_utc"]) + 129_600}
        if deleted:
            meta.update(was_deleted_later=True, removal_type="deleted")
        item["_meta"] = meta
        item["score"] = int(item["score"]) + 4     # scores and comment counts settle by then
        if "num_comments" in item:
            item["num_comments"] = sum(c["link_id"] == f"t3_{item['id']}" for c in self.comments)

    def seed(self, subreddit: str, posts: int, comments_per_post: int = 0, *, start: int = 0,
             same_second: int = 1) -> list[dict[str, Any]]:
        """Posts with real r/teaching titles and texts; ``same_second`` posts share each ``created_utc``."""
        rows = _corpus_rows()
        made = []
        for n in range(posts):
            title, body = rows[(start + n) % len(rows)]
            created = self.tick() if n % same_second == 0 else int(self.clock)
            post = self.add_post(subreddit, title, body, author=f"teacher_{(start + n) % 7}", created=created)
            for k in range(comments_per_post):
                reply = rows[(start + n + k + 1) % len(rows)][1][:400] or "Same here."
                parent = self.comments[-1] if k % 3 == 2 else None
                self.add_comment(post, reply, author=f"teacher_{(n + k) % 5}", parent=parent,
                                 created=created + 10 * (k + 1))
            made.append(post)
        return made

    # -- HTTP -------------------------------------------------------------------------------------
    def _ratelimit(self) -> tuple[bool, dict[str, str]]:
        now = time.time()
        if now >= self._reset_at:
            self._remaining, self._reset_at = self.ratelimit_budget, now + self.ratelimit_window
        allowed = self._remaining > 0
        self._remaining = max(self._remaining - 1, 0)
        return allowed, {"X-RateLimit-Remaining": str(self._remaining),
                         "X-RateLimit-Reset": str(math.ceil(self._reset_at))}

    def route(self, request: Request) -> Reply:
        path = request.path.rstrip("/")
        if path not in ("/api/posts/search", "/api/comments/search"):
            return not_found(request.path)
        allowed, headers = self._ratelimit()
        if not allowed:
            return Reply(429, {"error": "Rate limit exceeded"}, headers)
        if self.query_timeouts > 0:
            self.query_timeouts -= 1
            return Reply(400, {"error": "Query timed out"}, headers)
        try:
            data = self._search(self.posts if path == "/api/posts/search" else self.comments,
                                {k: v[-1] for k, v in request.query.items()})
        except BadParam as exc:
            return Reply(400, {"error": str(exc)}, headers)
        return Reply(200, {"data": data}, headers)

    def _search(self, items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
        now = time.time()
        limit_text = query.get("limit", "25")
        if limit_text == "auto":
            limit = self.auto_size
        elif limit_text.isdigit() and 1 <= int(limit_text) <= 100:
            limit = int(limit_text)
        else:
            raise BadParam(f"Invalid limit: {limit_text}, must be between 1 and 100, or auto")
        sort = query.get("sort", "desc")
        if sort not in ("asc", "desc"):
            raise BadParam(f"Invalid sort: {sort}")
        found = items
        for key in ("subreddit", "author"):
            if query.get(key):
                wanted = re.sub(r"^/?[ru]/", "", query[key]).lower()
                found = [i for i in found if str(i[key]).lower() == wanted]
        if query.get("after"):
            after = parse_date(query["after"], now)
            found = [i for i in found if i["created_utc"] >= after] if self.after_inclusive else \
                [i for i in found if i["created_utc"] > after]
        if query.get("before"):
            before = parse_date(query["before"], now)
            found = [i for i in found if i["created_utc"] < before]
        for key, prefix in (("link_id", "t3_"), ("parent_id", "t1_")):
            if key in query:
                value = query[key]
                wanted = (value if value.startswith(("t1_", "t3_")) else prefix + value) if value else None
                found = [i for i in found if (i.get(key) == wanted if wanted else
                                              str(i.get("parent_id", "")).startswith("t3_"))]
        found = sorted(found, key=lambda i: (i["created_utc"], i["id"]), reverse=sort == "desc")[:limit]
        if query.get("fields"):
            keep = set(query["fields"].split(","))
            return [{k: v for k, v in i.items() if k in keep} for i in found]
        return [dict(sorted(i.items())) for i in found]
