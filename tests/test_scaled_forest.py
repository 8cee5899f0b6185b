"""The whole-pipeline benchmark's scaled corpus keeps the real reply structure in every copy
(benchmarks/scaled_corpus.py ``scaled_forest``, benchmarks/pipeline_scale.py ``dump_line``)."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_scale import dump_line  # noqa: E402
from scaled_corpus import copy_name, scaled_forest  # noqa: E402


def _record(uid: str, parent: str | None, thread: str, author: str | None, when: str, **extra: object) -> dict:
    kind = uid.split(":")[1]
    return {"uid": uid, "id": uid.split(":")[2], "kind": kind, "parent_uid": parent, "thread_uid": thread,
            "author": author, "created_at": when, "title": "a title here" if kind == "post" else None,
            "body": "some words about grading and lesson plans", "link_url": None, "score": 3,
            "is_deleted": False, "removal": None, "community": "teaching", **extra}


# Two threads with nested replies, a post without author, a deleted post with a reply, and a reply whose
# thread and parent are not in the corpus (as in the real dumps: missing is missing).
BASE = [
    _record("reddit:post:p1", None, "reddit:post:p1", "a_1", "2018-01-02T10:00:00+00:00"),
    _record("reddit:comment:c1", "reddit:post:p1", "reddit:post:p1", "a_2", "2018-01-02T11:00:00+00:00"),
    _record("reddit:comment:c2", "reddit:comment:c1", "reddit:post:p1", "a_1", "2018-01-02T12:00:00+00:00"),
    _record("reddit:comment:c3", "reddit:comment:c2", "reddit:post:p1", None, "2018-01-03T09:00:00+00:00"),
    _record("reddit:post:p2", None, "reddit:post:p2", None, "2012-05-01T00:00:00+00:00"),
    _record("reddit:post:p3", None, "reddit:post:p3", None, "2018-02-01T00:00:00+00:00", is_deleted=True,
            removal="deleted", title=None, body=None),
    _record("reddit:comment:c4", "reddit:post:p3", "reddit:post:p3", "a_3", "2018-02-01T01:00:00+00:00"),
    _record("reddit:comment:c5", "reddit:comment:gone", "reddit:post:gone", "a_2", "2018-03-01T00:00:00+00:00"),
]


def test_every_copy_is_a_whole_reply_forest_of_other_people() -> None:
    out = list(scaled_forest(BASE, 4 * len(BASE)))
    by_copy: dict[int, set[str]] = defaultdict(set)
    for record in out:
        by_copy[record["copy"]].add(record["uid"])
    assert sorted(by_copy) == [0, 1, 2, 3] and all(len(uids) == len(BASE) for uids in by_copy.values())
    assert len({r["uid"] for r in out}) == len(out)
    real = {r["uid"]: r for r in BASE}
    for record in out:
        k = record["copy"]
        original = real[record["uid"].removesuffix(f"-c{k}")]
        assert record["uid"] == copy_name(original["uid"], k) and record["id"] == copy_name(original["id"], k)
        for name in ("parent_uid", "thread_uid"):
            target = original[name]
            if target is None:
                assert record[name] is None
            elif target in real:  # the real parent/thread exists: so does copy k's, in copy k
                assert record[name] in by_copy[k]
            else:  # missing in the corpus stays missing in every copy
                assert record[name] == copy_name(target, k) and record[name] not in {r["uid"] for r in out}
        if original["author"] is None:
            assert record["author"] is None
        else:
            assert record["author"] == (original["author"] if k == 0 else f"{original['author']}-c{k}")
    authors = [{r["author"] for r in out if r["copy"] == k and r["author"]} for k in range(4)]
    assert all(a.isdisjoint(b) for i, a in enumerate(authors) for b in authors[i + 1:])
    # Copy 0 is the real text; later copies drop words but keep the rest.
    assert [r["body"] for r in out[: len(BASE)]] == [real[r["uid"]]["body"] for r in out[: len(BASE)]]


def test_threads_stay_together_so_only_the_last_one_is_cut() -> None:
    out = list(scaled_forest(BASE, len(BASE) + 2))
    threads = [r["thread_uid"] for r in out]
    runs = [t for i, t in enumerate(threads) if i == 0 or threads[i - 1] != t]
    assert len(runs) == len(set(runs))  # each thread's records come in one run
    assert out[0]["kind"] == "post" or out[0]["thread_uid"] == "reddit:post:gone"


@pytest.mark.parametrize("copy", [0, 2])
def test_dump_lines_collect_into_the_same_reply_structure(copy: int) -> None:
    """What the real dump miner makes of a written line is the copy's uid, parent, thread and author."""
    from edumine.miners.reddit_dumps import normalise

    from edumine.schema import apply_deletion

    out = [r for r in scaled_forest(BASE, 3 * len(BASE)) if r["copy"] == copy]
    for record in out:
        collected = apply_deletion(normalise(dump_line(record)))
        assert {k: collected[k] for k in ("uid", "kind", "parent_uid", "thread_uid", "author", "is_deleted")} == \
            {k: record[k] for k in ("uid", "kind", "parent_uid", "thread_uid", "author", "is_deleted")}
        assert collected["created_at"].isoformat() == record["created_at"]


def test_real_corpora_cache_is_rebuilt_and_every_copy_keeps_their_forest(tmp_path: Path) -> None:
    """``base_records`` rebuilds a cache of the old format (no stamp, no reply fields); the real forest, deleted
    parents included, is whole in every copy."""
    import gzip
    import json

    from topics_benchmark import CACHE_FIELDS, base_records

    with gzip.open(tmp_path / "real.jsonl.gz", "wt") as handle:  # the old format: text only
        handle.write(json.dumps({"uid": "reddit:post:old", "title": "t", "body": "b", "kind": "post"}) + "\n")
    base = base_records(tmp_path, deleted=True)
    assert all(set(CACHE_FIELDS) <= set(r) for r in base) and "reddit:post:old" not in {r["uid"] for r in base}
    with_text = base_records(tmp_path)
    assert not any(r["is_deleted"] for r in with_text) and any(r["is_deleted"] for r in base)
    assert {r["uid"] for r in with_text} < {r["uid"] for r in base}

    real = {r["uid"] for r in base}
    out = list(scaled_forest(base, 2 * len(base)))
    copies = [{r["uid"] for r in out if r["copy"] == k} for k in (0, 1)]
    comments = [r for r in out if r["kind"] == "comment"]
    assert len(comments) == 2 * sum(r["kind"] == "comment" for r in base) > 0
    answered = 0
    for record in comments:
        k = record["copy"]
        original_parent = record["parent_uid"].removesuffix(f"-c{k}") if k else record["parent_uid"]
        assert (record["parent_uid"] in copies[k]) == (original_parent in real)
        answered += record["parent_uid"] in copies[k]
    assert answered > 0.9 * len(comments)  # the real dumps hold almost every parent (deleted ones included)
