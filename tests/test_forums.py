"""discourse.v1, wordpress.v1 and feed.v1 with real httpx / feedparser against local doubles (tests/servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_config
from servers.discourse import DiscourseDouble
from servers.wordpress import WordPressDouble


@pytest.fixture
def forum():
    double = DiscourseDouble(per_page=30, chunk=20).start()
    yield double
    double.stop()
    assert not double.errors, double.errors[0]


@pytest.fixture
def blog():
    double = WordPressDouble(feed_size=10).start()
    yield double
    double.stop()
    assert not double.errors, double.errors[0]


def collect(lake: Path, *sources: dict) -> dict:
    from edumine.pipelines.runner import run_collect

    ctx = run_collect(make_config(lake, list(sources)))
    return json.loads(ctx.manifest_path.read_text())


def lake_rows(lake: Path) -> dict[str, dict]:
    from edumine.lake import Lake

    rows = Lake(lake).read_posts().to_pylist()
    assert len(rows) == len({r["uid"] for r in rows}), "a uid is stored twice"
    return {r["uid"]: r for r in rows}


def discourse(double: DiscourseDouble, **extra: object) -> dict:
    return {"kind": "discourse.v1", "url": double.url, "community": "teachers-forum", "backoff_seconds": 0.05,
            "timeout": 1.0, **extra}


def wordpress(double: WordPressDouble, **extra: object) -> dict:
    return {"kind": "wordpress.v1", "url": double.url, "community": "research-blog", "per_page": 50,
            "backoff_seconds": 0.05, "timeout": 2.0, **extra}


# -- HTML to text ---------------------------------------------------------------------------------
def test_html_becomes_text_the_cleaner_understands() -> None:
    from edumine.miners.html_text import html_to_text
    from edumine.models.text.clean import clean_text

    html = ('<aside class="quote" data-username="bob"><div class="title"><img class="avatar"> bob:</div>'
            '<blockquote><p>quoted words</p></blockquote></aside><p>I&#8217;m a <strong>science</strong> teacher'
            '<br>in Ohio &amp; thanks <a class="mention" href="/u/alice_t">@alice_t</a> <img class="emoji" '
            'alt=":smile:"> for <a href="https://x.org/a">this link</a>.</p><ul><li>one</li><li>two</ul>'
            '<pre><code>x = 1</code></pre><script>track()</script><img src="c.png" alt="a chart">')
    text = html_to_text(html)
    assert "bob" not in text and "track" not in text and ":smile:" not in text and "https" not in text
    assert "> > quoted words" in text and "u/alice_t" in text and "- one\n- two" in text and "```" in text
    assert "I’m a science teacher\nin Ohio & thanks" in text and "a chart" in text
    cleaned = clean_text(None, text)
    assert "quoted" not in cleaned and "alice" not in cleaned and "x = 1" not in cleaned
    assert cleaned.startswith("I’m a science teacher")
    assert html_to_text(None) is None and html_to_text("plain") == "plain"


# -- Discourse ------------------------------------------------------------------------------------
def test_discourse_full_then_incremental_with_edits_and_deletions(forum: DiscourseDouble, tmp_lake: Path) -> None:
    topics = forum.seed(40, replies=1)
    long_topic = topics[0]
    for k in range(24):                                              # beyond the 20-post first chunk
        forum.reply(long_topic, f"<p>Reply number {k}</p>", reply_to=2 if k == 5 else None)
    first = collect(tmp_lake, discourse(forum))["inputs"][0]
    total = sum(len(t.posts) for t in forum.topics.values())
    assert first["added"] == first["records"] == total == 40 * 2 + 24
    assert len(forum.hits(r"^/latest\.json")) == 2 and forum.hits(r"^/t/\d+/posts\.json")
    rows = lake_rows(tmp_lake)
    first_post = rows[f"discourse:post:{forum.url.split('//')[1].replace(':', '-')}:{long_topic.posts[0].id}"]
    assert first_post["title"] == long_topic.title and first_post["num_comments"] == len(long_topic.posts) - 1
    assert first_post["flair"] == "Lesson planning" and first_post["community"] == "teachers-forum"
    reply = next(r for r in rows.values() if r["body"] == "Reply number 5")
    assert reply["parent_uid"].endswith(f":{long_topic.posts[1].id}") and reply["thread_uid"] == first_post["uid"]
    quoted = next(r for r in rows.values() if r["kind"] == "comment" and "pizza" in (r["body"] or ""))
    assert "ms_rivera" not in quoted["body"] and "u/a_" in quoted["body"]   # mention pseudonymised at ingest

    forum.clear_log()
    unchanged = collect(tmp_lake, discourse(forum))["inputs"][0]
    assert unchanged["records"] == 0 and not forum.hits(r"^/(latest|t/)")  # the /posts.json probe sufficed

    topic = topics[3]
    forum.edit(topic.posts[1], "<p>Edited: use number lines instead.</p>")
    forum.user_delete(topic.posts[0])
    forum.reply(topic, "<p>Number lines worked for us.</p>")
    new_topic = forum.add_topic("Parent emails at midnight", "<p>How do you set boundaries?</p>")
    forum.reply(new_topic, "<p>Office hours in the signature.</p>")
    third = collect(tmp_lake, discourse(forum))["inputs"][0]
    assert third["records"] == 3 + 2 and third["added"] == 3 and third["updated"] == 2
    rows = lake_rows(tmp_lake)
    by_id = {r["id"].rsplit(":", 1)[1]: r for r in rows.values()}
    assert by_id[str(topic.posts[1].id)]["body"] == "Edited: use number lines instead."
    assert by_id[str(topic.posts[1].id)]["is_edited"]
    deleted = by_id[str(topic.posts[0].id)]
    assert deleted["is_deleted"] and deleted["body"] is None and deleted["title"] is None
    assert len(rows) == sum(len(t.posts) for t in forum.topics.values())


def test_discourse_category_filter(forum: DiscourseDouble, tmp_lake: Path) -> None:
    forum.seed(10, replies=2)
    report = collect(tmp_lake, discourse(forum, categories=["new-teachers"]))["inputs"][0]
    wanted = [t for t in forum.topics.values() if t.category_id == 7]
    assert report["records"] == sum(len(t.posts) for t in wanted) == 15
    assert forum.hits(r"^/c/new-teachers/7/l/latest\.json") and not forum.hits(r"^/latest\.json")
    assert {r["flair"] for r in lake_rows(tmp_lake).values()} == {"New teachers"}
    bad = collect(tmp_lake, discourse(forum, categories=["no-such"]))["inputs"][0]
    assert bad["quarantined"] == {"fetch_failed": 1} and "lesson-planning" in bad["notes"]["failed"]


def test_discourse_faults_lose_and_duplicate_nothing(forum: DiscourseDouble, tmp_lake: Path) -> None:
    topics = forum.seed(35, replies=2)
    for k in range(22):
        forum.reply(topics[1], f"<p>More {k}</p>")
    forum.inject(r"^/latest\.json", "status", status=429, retry_after=0.2)
    forum.inject(r"^/latest\.json", "status", status=500, times=2)
    forum.inject(r"^/t/\d+\.json", "slow", delay=1.5)                # > timeout=1
    forum.inject(r"^/t/\d+\.json", "badjson")
    forum.inject(r"^/t/\d+/posts\.json", "drop")
    forum.inject(rf"^/t/{topics[5].id}\.json", "status", status=503, times=100)   # fails after retries
    first = collect(tmp_lake, discourse(forum, retries=3))["inputs"][0]
    assert first["quarantined"] == {"fetch_failed": 1} and first["notes"]["retries"] >= 8
    rows = lake_rows(tmp_lake)
    expected = {p.id for p in forum.posts.values() if p.topic is not topics[5]}
    assert {int(r["id"].rsplit(":", 1)[1]) for r in rows.values()} == expected
    forum.faults.clear()
    second = collect(tmp_lake, discourse(forum))["inputs"][0]       # the failed topic kept the marks back
    assert second["added"] == len(topics[5].posts) and second["quarantined_total"] == 0
    assert len(lake_rows(tmp_lake)) == len(forum.posts)


# -- WordPress and feeds --------------------------------------------------------------------------
def test_wordpress_rest_incremental(blog: WordPressDouble, tmp_lake: Path) -> None:
    posts = blog.seed(120, comments=2)
    first = collect(tmp_lake, wordpress(blog))["inputs"][0]
    assert first["notes"]["api"] == "rest" and first["added"] == 120 * 3
    assert len(blog.hits(r"/wp-json/wp/v2/posts$")) == 1 + 3           # probe + 3 pages of 50
    rows = lake_rows(tmp_lake)
    post = next(r for r in rows.values() if r["kind"] == "post")
    assert post["title"].startswith("Self-directed learning for teachers – part")
    assert "chart" in post["body"] and "track()" not in post["body"] and "<p>" not in post["body"]
    reply = next(r for r in rows.values() if r["kind"] == "comment" and r["parent_uid"].startswith("blog:comment"))
    assert reply["thread_uid"].startswith("blog:post:")

    blog.clear_log()
    blog.edit(posts[10], "<p>Updated with the 2024 survey.</p>")
    blog.seed(3, comments=1)
    blog.add_comment(posts[0], "<p>Late thought.</p>")
    second = collect(tmp_lake, wordpress(blog))["inputs"][0]
    assert second["records"] == 3 + 3 + 1 + 1 and second["added"] == 7 and second["updated"] == 1
    assert all("after" in r.query or "modified_after" in r.query or r.query.get("per_page") == ["1"]
               for r in blog.hits(r"^/wp-json/"))
    assert lake_rows(tmp_lake)[f"blog:post:{blog.url.split('//')[1].replace(':', '-')}:{posts[10].id}"]["body"] == \
        "Updated with the 2024 survey."


@pytest.mark.parametrize("mode", ["404", "html"])
def test_wordpress_falls_back_to_its_feeds_with_the_same_uids(mode: str, blog: WordPressDouble,
                                                              tmp_path: Path) -> None:
    blog.seed(25, comments=1)
    rest = collect(tmp_path / "rest", wordpress(blog))["inputs"][0]
    blog.rest = mode
    fallback = collect(tmp_path / "feed", wordpress(blog))["inputs"][0]
    assert fallback["notes"]["api"] == "feed" and rest["notes"]["api"] == "rest"
    assert len(blog.hits(r"^/feed/$")) == 4                          # pages 1-3, then 404 past the end
    via_rest, via_feed = lake_rows(tmp_path / "rest"), lake_rows(tmp_path / "feed")
    assert set(via_feed) == set(via_rest) and len(via_feed) == 50
    for uid, row in via_feed.items():
        assert row["thread_uid"] == via_rest[uid]["thread_uid"] and row["body"] == via_rest[uid]["body"]
    blog.seed(2)
    again = collect(tmp_path / "feed", wordpress(blog))["inputs"][0]
    assert again["records"] == 2 and again["added"] == 2


def test_atom_feed_paging_incremental_and_malformed_replies(blog: WordPressDouble, tmp_lake: Path) -> None:
    blog.seed(23)
    blog.inject(r"^/feed/atom/$", "badjson")                         # a 200 that is not a feed: retried
    blog.inject(r"^/feed/atom/$", "status", status=503)
    source = {"kind": "feed.v1", "urls": [f"{blog.url}/feed/atom/"], "community": "teacher-org",
              "backoff_seconds": 0.05}
    first = collect(tmp_lake, source)["inputs"][0]
    assert first["added"] == 23 and first["notes"]["retries"] == 2
    assert len(blog.hits(r"^/feed/atom/$")) == 3 + 2
    blog.seed(4)
    blog.clear_log()
    second = collect(tmp_lake, source)["inputs"][0]
    assert second["records"] == 4 and len(blog.hits(r"^/feed/atom/$")) == 1
    blog.seed(25)
    third = collect(tmp_lake, {**source, "max_pages": 2})["inputs"][0]
    assert third["records"] == 20 and third["notes"]["feeds"][f"{blog.url}/feed/atom/"]["window_truncated"]
