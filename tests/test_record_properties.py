"""Property-based tests (hypothesis) over the record builders of every source kind and the one normaliser
they all pass (miners/records.py): whatever a field holds, a record is either rejected with a reason
(``BadRecord``) or it fits the lake's Parquet schema exactly. Nothing else may escape."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edumine.miners.base import BadRecord, Rejected
from edumine.miners.discourse import DiscourseSource
from edumine.miners.feeds import FeedSource
from edumine.miners.ingest import prepare
from edumine.miners.live import guarded
from edumine.miners.reddit_dumps import normalise as dump_record
from edumine.miners.reddit_records import comment_record, post_record
from edumine.miners.records import normalise_record, plausible_range
from edumine.miners.tabular import ColumnMap, TabularSource
from edumine.miners.wordpress import WordPressSource
from edumine.privacy import Pseudonymiser
from edumine.schema import FILE_SCHEMA, UTC

PLAUSIBLE = plausible_range()
PSEUDONYMISER = Pseudonymiser(b"property-test-key")
RETRIEVED = datetime(2024, 1, 1, tzinfo=UTC)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a JSON reply, a CSV cell or a Parquet column may hold, hostile ones included.
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["", "  ", "[deleted]", "t3_abc", "t1_x", "2018-03-04", "1514764800",
                                           "1e20", "-1", "NaN", "u/someone", "\ud800", "3000-01-01T00:00:00"]),
    st.sampled_from([0, 1, -5, 1514764800, 1514764800.5, 1e20, 32503680000, 2**63, -(2**63) - 1]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)


def record_from(keys: list[str]) -> st.SearchStrategy[dict]:
    """Dicts over any subset of the given keys, each holding any value."""
    return st.fixed_dictionaries({}, optional={k: values for k in keys})


def lands_or_is_rejected(build, *args) -> None:
    """The whole path a built record takes to the lake: builder, normaliser, prepare, Arrow conversion."""
    try:
        record = build(*args)
    except BadRecord:
        return
    if isinstance(record, Rejected):
        return
    try:
        record = normalise_record(record, plausible=PLAUSIBLE, counts=Counter())
    except BadRecord:
        return
    record, key = prepare(record, PSEUDONYMISER, "test.v1", "run")
    pa.Table.from_pylist([record], schema=FILE_SCHEMA)
    assert all(isinstance(part, str) and part for part in key)


def mutated(base: dict, key: str) -> st.SearchStrategy[dict]:
    """A valid ``base`` with ``key`` set to any value or removed, and maybe one more key changed: each field's
    handling is reached (a record with many random fields is rejected at the first bad one)."""
    other = st.dictionaries(st.sampled_from(sorted(base)), st.one_of(values, st.just(MISSING)), max_size=1)
    return st.tuples(st.one_of(values, st.just(MISSING)), other).map(
        lambda pair: {k: v for k, v in {**base, **pair[1], key: pair[0]}.items() if v is not MISSING})


MISSING = object()
DUMP_BASE = {"id": "a1", "subreddit": "teaching", "created_utc": 1514764800, "title": "t", "selftext": "b",
             "author": "someone", "score": 3, "num_comments": 1, "edited": False, "retrieved_on": 1600000000,
             "permalink": "/r/teaching/comments/a1/x/", "is_self": True}
DUMP_KEYS = list(DUMP_BASE) + ["name", "body", "link_id", "parent_id", "retrieved_utc", "updated_on", "_meta",
                               "url", "link_flair_text", "removed_by_category"]


@pytest.mark.parametrize("key", DUMP_KEYS)
@SETTINGS
@given(data=st.data())
def test_reddit_dump_objects(key: str, data: st.DataObject) -> None:
    lands_or_is_rejected(dump_record, data.draw(mutated(DUMP_BASE, key)))


TABULAR_COLUMNS = ColumnMap(id="id", created="created", title="title", body="body", community="sub",
                            author="author", score="score", url="url", num_comments="n", parent_id="parent",
                            thread_id="thread", retrieved="retrieved")
TABULAR_BASE = {"id": "x", "created": "2018-03-04", "title": "t", "body": "b", "sub": "teaching", "author": "a",
                "score": "4", "url": "http://x", "n": "2", "parent": "t3_p", "thread": "p", "retrieved": ""}


@pytest.mark.parametrize("key", list(TABULAR_BASE))
@SETTINGS
@given(data=st.data(), kind=st.sampled_from(["post", "comment"]))
def test_tabular_rows(key: str, data: st.DataObject, kind: str) -> None:
    row = data.draw(mutated(TABULAR_BASE, key))
    source = TabularSource(paths=["x.csv"], columns=TABULAR_COLUMNS, kind_of_record=kind, community="teaching")
    lands_or_is_rejected(source._record, row, TABULAR_COLUMNS, Counter(), RETRIEVED)


PRAW_BASE = {"id": "p1", "subreddit": "teaching", "created_utc": 1600000000.0, "title": "t", "selftext": "b",
             "author": "someone", "permalink": "/r/teaching/comments/p1/x/", "is_self": True, "score": 2,
             "num_comments": 0, "edited": False, "body": "c", "link_id": "t3_p0", "parent_id": "t3_p0"}
PRAW_KEYS = list(PRAW_BASE) + ["url", "link_flair_text", "removed_by_category"]


@pytest.mark.parametrize("key", PRAW_KEYS)
@SETTINGS
@given(draw=st.data(), comment=st.booleans())
def test_praw_replies(key: str, draw: st.DataObject, comment: bool) -> None:
    data = draw.draw(mutated(PRAW_BASE, key))
    build = comment_record if comment else post_record
    lands_or_is_rejected(lambda d, r: guarded(build, d, r, location="test", raw=d), data, RETRIEVED)


DISCOURSE_BASE = {"id": 7, "created_at": "2020-02-02T10:00:00Z", "post_number": 2, "reply_to_post_number": 1,
                  "version": 1, "like_count": 0, "username": "someone", "cooked": "<p>hi</p>",
                  "updated_at": "2020-02-03T10:00:00Z"}
DISCOURSE_KEYS = list(DISCOURSE_BASE) + ["deleted_at", "user_deleted", "actions_summary", "topic_slug"]


TOPIC_BASE = {"id": 3, "slug": "s", "title": "t", "posts_count": 2}


@pytest.mark.parametrize("key", [f"post.{k}" for k in DISCOURSE_KEYS] + [f"topic.{k}" for k in
                                                                       ["id", "slug", "title", "category_id",
                                                                        "posts_count"]])
@SETTINGS
@given(data=st.data())
def test_discourse_posts(key: str, data: st.DataObject) -> None:
    which, name = key.split(".", 1)
    post = data.draw(mutated(DISCOURSE_BASE, name)) if which == "post" else DISCOURSE_BASE
    topic = data.draw(mutated(TOPIC_BASE, name)) if which == "topic" else TOPIC_BASE
    source = DiscourseSource(url="http://forum.example")
    lands_or_is_rejected(source._record, topic, post, 7, {1: 6}, {}, RETRIEVED)


FEED_BASE = {"id": "http://blog.example/?p=5", "link": "http://blog.example/a", "title": "t", "author": "someone",
             "summary": "<p>x</p>", "published_parsed": time.gmtime(1600000000)}
FEED_KEYS = list(FEED_BASE) + ["content", "tags", "updated_parsed"]


@pytest.mark.parametrize("key", FEED_KEYS)
@SETTINGS
@given(data=st.data())
def test_feed_entries(key: str, data: st.DataObject) -> None:
    entry = data.draw(mutated(FEED_BASE, key))
    source = FeedSource(urls=["http://blog.example/feed"])
    lands_or_is_rejected(source._record, entry, "blog.example", RETRIEVED)


WP_BASE = {"id": 5, "date_gmt": "2019-05-05T05:05:05", "modified_gmt": "2019-05-06T05:05:05", "title": {"rendered": "t"},
           "content": {"rendered": "<p>b</p>"}, "link": "http://blog.example/a", "post": 4, "author": 2,
           "author_name": "someone"}
WP_KEYS = list(WP_BASE) + ["_embedded", "parent"]


@pytest.mark.parametrize("key", WP_KEYS)
@SETTINGS
@given(data=st.data(), comment=st.booleans())
def test_wordpress_items(key: str, data: st.DataObject, comment: bool) -> None:
    item = data.draw(mutated(WP_BASE, key))
    source = WordPressSource(url="http://blog.example")
    lands_or_is_rejected(source._comment if comment else source._post, item, RETRIEVED)


CORE = {"uid": "reddit:post:a", "platform": "reddit", "community": "teaching", "kind": "post", "id": "a",
        "created_at": datetime(2018, 1, 1, tzinfo=UTC), "author": "someone", "title": "t", "body": "b",
        "score": 1, "num_comments": 0, "is_edited": False, "retrieved_at": datetime(2020, 1, 1, tzinfo=UTC)}


@pytest.mark.parametrize("key", list(FILE_SCHEMA.names) + ["platform", "community"])
@SETTINGS
@given(data=st.data())
def test_the_normaliser_alone_accepts_nothing_the_lake_cannot_store(key: str, data: st.DataObject) -> None:
    lands_or_is_rejected(lambda r: r, data.draw(mutated(CORE, key)))
