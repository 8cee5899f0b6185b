"""reddit.dumps.v1's column-at-a-time fast path (miners/dump_columns.py) gives, block by block, exactly the Batch
of the record-at-a-time reading (``DumpBlock()`` + ``normalise_record``): same rows in the same order, same
quarantine, same counts; and the lake it writes equals the record-at-a-time lake on every era fixture, every
corpus dump and planted lines at each edge of what the fast path takes."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import pytest

from edumine.miners import dump_columns
from edumine.miners.base import ReadStats, Rejected
from edumine.miners.batches import Settings, run_job
from edumine.miners.records import plausible_range
from edumine.miners.reddit_dumps import RedditDumpSource
from edumine.privacy import Pseudonymiser

from conftest import CORPORA, TEST_KEY
from dumpfiles import comment, submission, write_zst
from test_batched_ingest import awkward_lines, era_lines, ingest, posts, quarantine

FUTURE = 32503680000  # year 3000


def edge_lines() -> list[str]:
    """Each value at or just past an edge of the fast path (and the usual values around them)."""
    s, c = submission, comment
    objects = [
        # created_utc: int, whole float, digit string, and what needs the general code
        s("e1", created=1514764800.0), s("e2", created="1514764800"), s("e3", created=1514764800.25),
        s("e4", created="1514764800.0"), s("e5", created=" 1514764800"), s("e6", created=1514764800123),
        s("e7", created=-5), s("e8", created=0), s("e9", created=True), s("e10", created=2**70),
        s("e11", created="12abc"), s("e12", created=None), s("e13", created=FUTURE), s("e14", created="0"),
        # edited: flags, epochs, and numbers that are flags or not times
        s("d1", edited=True), s("d2", edited=1514800000), s("d3", edited=1514800000.0), s("d4", edited=1514800000.5),
        s("d5", edited=0), s("d6", edited=1), s("d7", edited=-5), s("d8", edited="yes"), s("d9", edited=FUTURE),
        s("d10", edited=2**70), s("d11", edited=None),
        # retrieval times
        s("r1", retrieved_on="1600000000"), s("r2", retrieved_on=0), s("r3", retrieved_on=-1),
        s("r4", retrieved_on=1600000000.5), s("r5", retrieved_on=FUTURE), s("r6", retrieved_on=True),
        s("r7", retrieved_on=None, retrieved_utc=1600000001, updated_on=1600000002),
        s("r8", retrieved_on=1600000003, retrieved_utc=1600000001.0),
        # Arctic Shift's _meta
        s("m1", _meta={"retrieved_2nd_on": 1700000000, "was_deleted_later": True, "is_edited": False}),
        s("m2", _meta={"is_edited": True, "note": {"x": [1, 2]}}), s("m3", _meta=[1, 2]), s("m4", _meta="x"),
        s("m5", _meta={"was_deleted_later": "yes"}), s("m6", _meta={"is_edited": 1}),
        s("m7", _meta={"retrieved_2nd_on": "1700000000"}), s("m8", _meta={"retrieved_2nd_on": FUTURE}),
        s("m9", _meta=None), s("m10", _meta={"was_deleted_later": False}, removed_by_category="moderator"),
        # ids and communities
        s(""), s(" "), s("a b"), s("é1"), s(5), {k: v for k, v in s("n1").items() if k != "id"} | {"name": "t3_n1"},
        s("c1", subreddit=123), s("c2", subreddit="r/teaching"), s("c3", subreddit="Teaching "),
        s("c4", subreddit="u_Foo"), s("c5", subreddit="U_Foo"), s("c6", subreddit=""), s("c7", subreddit="tëaching"),
        s("c8", subreddit="TEACHING"), s("c9", subreddit=None),
        # comments: threads, parents, permalinks
        c("k1", "e1"), c("k2", "e1", parent="t1_k1"), c("k3", "e1", parent=""), c("k4", "e1", parent="xyz"),
        c("k5", "e1", parent=5), c("k6", "e1", link_id=None), c("k7", "e1", link_id=""), c("k8", "e1", link_id="t3_"),
        c("k9", "e1", link_id="t1_k1"), c("k10", "e1", link_id="abc"), c("k11", "e1", link_id=7),
        c("k12", "e1", permalink=""), c("k13", "e1", permalink="/r/teaching/comments/e1/_/k13/"),
        c("k14", "e1", permalink="relative/path"), c("k15", "e1", permalink=3),
        {k: v for k, v in c("k16", "e1").items() if k != "link_id"},            # body, no title: a comment
        s("k17", body="a post with a body key too"),                              # title and body: a post
        {k: v for k, v in c("k18", "e1").items() if k != "body"},
        # posts: self, links, counts
        s("p1", is_self=False, url="https://example.org/x"), s("p2", is_self="yes"), s("p3", is_self=1),
        s("p4", is_self=None, url="https://example.org/y"), s("p5", url=5, is_self=False),
        s("p6", score=1.5), s("p7", score="12"), s("p8", score=True), s("p9", score=2**63), s("p10", score=-(2**63)),
        s("p11", score=None), s("p12", num_comments=2**63 - 1), s("p13", num_comments="x"), s("p14", num_comments=-1),
        c("p15", "e1", num_comments="ignored on comments", score=-3),
        # text and people
        s("t1", author=12345), s("t2", author="[deleted]"), s("t3", author=" Spaced "), s("t4", author="ÄÖ_x"),
        s("t5", author=None), s("t6", title=7), s("t7", title=["a"]), s("t8", selftext="[removed]"),
        s("t9", selftext=" [deleted] \n"), s("t10", selftext="see u/Someone_Here and /user/other-one", title="U/Caps"),
        s("t11", link_flair_text="u/flair_name"), s("t12", permalink="/r/u_Person/comments/t12/x/"),
        s("t13", removed_by_category=""), s("t14", removed_by_category=5), s("t15", link_flair_text=3),
        s("t16", selftext="emoji 🎉 and \u0000 nul"), s("t17", title="x\u2028y"),
    ]
    lines = [json.dumps(o) for o in objects]
    lines += [
        "", "   ", "\t", "null", "5", '"text"', "[]", "{not json", '{"id": NaN}',
        json.dumps(submission("dup")).replace('{"id": "dup"', '{"id": "dup1", "id": "dup2"', 1),  # duplicate key
        json.dumps(submission("big", gilded=10**30)),                               # a big int where unused
        json.dumps(submission("sur", title="lone \udc80 surrogate")),               # escaped: orjson refuses
        json.dumps(submission("deep", extra=[[[[1]]]])),
        json.dumps(submission("cr")) + "\r",
        "\ufeff" + json.dumps(submission("bom")),                                  # a byte order mark
        json.dumps(submission("huge", created=10**20, score=10**20)),
    ]
    return lines


def settings(**changes) -> Settings:
    base = Settings(label="dumps", kind="reddit.dumps.v1", run_id="run-1", plausible=plausible_range(),
                    user_profiles="exclude", pseudonymiser=Pseudonymiser(TEST_KEY.encode()))
    return dataclasses.replace(base, **changes)


def assert_blocks_equal(source: RedditDumpSource, chosen: Settings) -> dict[str, int]:
    """Every block of ``source`` read both ways; returns how many rows took each path."""
    taken = {"rows": 0, "slow": 0}
    reference = dataclasses.replace(chosen, columnar=False)
    original = dump_columns._slow_items

    def counting(block, lines, rows, counts):  # the real function, counted
        taken["slow"] += len(rows)
        return original(block, lines, rows, counts)

    dump_columns._slow_items = counting
    try:
        for job in source.batch_jobs(ReadStats()):
            if isinstance(job, Rejected):
                continue
            taken["rows"] += job.block.count(b"\n") + 1
            fast, slow = run_job(job, chosen), run_job(job, reference)
            assert fast.records == slow.records
            assert (fast.table is None) == (slow.table is None)
            if fast.table is not None:
                assert fast.table.schema == slow.table.schema
                for name in fast.table.column_names:
                    assert fast.table[name].to_pylist() == slow.table[name].to_pylist(), name
            assert fast.quarantined == slow.quarantined
            assert {k: v for k, v in fast.stats.files.items() if v} == {k: v for k, v in slow.stats.files.items() if v}
            assert fast.profiles_left_out == slow.profiles_left_out
    finally:
        dump_columns._slow_items = original
    return taken


@pytest.fixture()
def planted(tmp_path: Path) -> Path:
    """Edge lines scattered among the era lines, in one block and over block boundaries (plain and zstd)."""
    eras = era_lines()
    lines = []
    for i, line in enumerate(edge_lines() + awkward_lines()):
        lines += [eras[i % len(eras)], line]
    (tmp_path / "RS_edges.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    write_zst(tmp_path / "RC_edges.zst", lines * 40)  # > 1 MiB: several blocks
    return tmp_path


@pytest.mark.parametrize("profiles", ["exclude", "pseudonymise"])
def test_every_block_equals_the_record_at_a_time_batch(planted: Path, profiles: str) -> None:
    taken = assert_blocks_equal(RedditDumpSource(paths=[str(planted / "*")]), settings(user_profiles=profiles))
    assert taken["slow"] < taken["rows"] * 0.6  # the fast path took the era lines and the ordinary edges


def test_filters_and_the_plausible_range_count_alike(planted: Path) -> None:
    source = RedditDumpSource(paths=[str(planted / "*")], subreddits=["teaching", "askhistorians"],
                              since=date(2017, 6, 1), until=date(2018, 6, 30))
    assert_blocks_equal(source, settings())
    narrow = plausible_range(since=date(2015, 1, 1), until=date(2019, 1, 1))
    assert_blocks_equal(RedditDumpSource(paths=[str(planted / "*")]), settings(plausible=narrow))


def test_eras_and_corpora_take_the_fast_path_and_equal_it() -> None:
    paths = sorted(str(p) for p in (CORPORA / "reddit-teaching-2017-18").glob("*.zst"))
    paths += sorted(str(p) for p in (CORPORA.parent / "fixtures" / "pushshift-eras").glob("*.ndjson"))
    taken = assert_blocks_equal(RedditDumpSource(paths=paths), settings())
    assert taken["rows"] > 5000 and taken["slow"] < taken["rows"] * 0.01


def test_lake_equals_record_at_a_time_on_eras_corpora_and_planted_lines(tmp_path: Path, planted: Path) -> None:
    paths = [str(planted / "*"), str(CORPORA / "reddit-teaching-2017-18" / "*.zst")]
    reference, expected = ingest(tmp_path, "one-by-one", paths, batched=False)
    fast, report = ingest(tmp_path, "columnar", paths, batched=True, workers=0)
    assert report == expected
    assert posts(fast) == posts(reference)
    assert quarantine(fast) == quarantine(reference)
    assert expected["added"] > 5000 and expected["quarantined_total"] > 20 and expected["duplicates"] > 0
