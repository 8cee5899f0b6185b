"""reddit.dumps.v1 on Arctic Shift downloads: per-subreddit .zst dumps and the download tool's .jsonl files,
in the 2023+ shape (real 2024-02 lines from ../shared/fixtures/pushshift-eras, moved to one r/Teachers thread)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from conftest import FIXTURES, make_config
from dumpfiles import write_zst

ERAS = FIXTURES / "pushshift-eras"


def arctic_lines() -> tuple[list[dict], list[dict]]:
    """The 2024-02 fixture objects (they have ``_meta``), as r/Teachers posts and replies to the first post."""
    def load(name: str) -> list[dict]:
        return [o for o in map(json.loads, (ERAS / name).read_text().splitlines()) if "_meta" in o]

    posts, comments = load("submissions.ndjson"), load("comments.ndjson")
    for post in posts:
        post["subreddit"] = "Teachers"
    thread = posts[0]["id"]
    for n, comment in enumerate(comments):
        comment["subreddit"] = "Teachers"
        comment["link_id"] = f"t3_{thread}"
        comment["parent_id"] = f"t3_{thread}" if n % 2 == 0 else f"t1_{comments[n - 1]['id']}"
    # What the second retrieval records (file_content_explanations.md, 2023-11+).
    posts[1]["_meta"].update(was_deleted_later=True, removal_type="deleted")
    comments[0]["_meta"].update(is_edited=True)
    comments[2].update(body="Restored: this was [removed] at first.")
    comments[2]["_meta"].update(was_initially_deleted=True, removal_type="removed")
    comments[3]["_meta"] = {"note": "no_2nd_retrieval"}
    return posts, comments


def collect(lake: Path, paths: list[Path], **extra: object) -> dict:
    from edumine.pipelines.runner import run_collect

    source = {"kind": "reddit.dumps.v1", "paths": [str(p) for p in paths], **extra}
    return json.loads(run_collect(make_config(lake, [source])).manifest_path.read_text())["inputs"][0]


def lake_rows(lake: Path) -> dict[str, dict]:
    from edumine.lake import Lake

    rows = Lake(lake).read_posts().to_pylist()
    assert len(rows) == len({r["uid"] for r in rows}), "a uid is stored twice"
    return {r["uid"]: r for r in rows}


def test_per_subreddit_zst_and_download_tool_jsonl(tmp_path: Path) -> None:
    posts, comments = arctic_lines()
    zst = [write_zst(tmp_path / "dumps" / "Teachers_submissions.zst", posts),
           write_zst(tmp_path / "dumps" / "Teachers_comments.zst", comments)]
    # The download tool's files: one object per line, .jsonl, not compressed; here a later copy of part of it.
    later = copy.deepcopy(posts[:2]) + copy.deepcopy(comments[:3])
    jsonl = tmp_path / "download" / "r_Teachers_posts.jsonl"
    jsonl.parent.mkdir()
    jsonl.write_text("".join(json.dumps(o, sort_keys=True) + "\n" for o in later[:2]))
    jsonl_comments = jsonl.with_name("r_Teachers_comments.jsonl")
    jsonl_comments.write_text("".join(json.dumps(o, sort_keys=True) + "\n" for o in later[2:]))

    report = collect(tmp_path / "lake", zst + [jsonl, jsonl_comments], subreddits=["teachers"])
    assert report["quarantined_total"] == 0 and report["records"] == len(posts) + len(comments) + 5
    assert report["added"] == len(posts) + len(comments)
    rows = lake_rows(tmp_path / "lake")
    assert len(report["files"]) == 4

    thread = posts[0]["id"]
    for comment in comments:
        row = rows[f"reddit:comment:{comment['id']}"]
        assert row["thread_uid"] == f"reddit:post:{thread}" and row["community"] == "teachers"
        assert row["created_at"].timestamp() == comment["created_utc"]          # float created_utc (2024)
    deleted_later = rows[f"reddit:post:{posts[1]['id']}"]
    assert deleted_later["is_deleted"] and deleted_later["removal"] == "deleted_later"
    assert deleted_later["title"] is None and deleted_later["body"] is None
    edited = rows[f"reddit:comment:{comments[0]['id']}"]
    assert edited["is_edited"] and not rows[f"reddit:comment:{comments[1]['id']}"]["is_edited"]
    restored = rows[f"reddit:comment:{comments[2]['id']}"]
    assert not restored["is_deleted"] and restored["body"].startswith("Restored")
    assert rows[f"reddit:comment:{comments[2]['id']}"]["retrieved_at"].timestamp() == \
        comments[2]["_meta"]["retrieved_2nd_on"]
    single = rows[f"reddit:comment:{comments[3]['id']}"]                  # no 2nd retrieval: retrieved_on/updated_on
    assert single["retrieved_at"].timestamp() == max(comments[3]["retrieved_on"], comments[3]["updated_on"])
    removed = [c for c in comments if c.get("body") == "[removed]"]
    assert removed and all(rows[f"reddit:comment:{c['id']}"]["is_deleted"] for c in removed)


def test_a_deletion_in_a_later_download_sticks(tmp_path: Path) -> None:
    posts, comments = arctic_lines()
    first = write_zst(tmp_path / "Teachers_submissions.zst", posts[2:3])
    collect(tmp_path / "lake", [first])
    later = copy.deepcopy(posts[2])
    later["_meta"].update(was_deleted_later=True, retrieved_2nd_on=later["_meta"]["retrieved_2nd_on"] + 100)
    path = tmp_path / "r_Teachers_posts.jsonl"
    path.write_text(json.dumps(later) + "\n")
    assert collect(tmp_path / "lake", [path])["updated"] == 1
    again = copy.deepcopy(posts[2])
    again["_meta"] = {"retrieved_2nd_on": later["_meta"]["retrieved_2nd_on"] + 100, "was_initially_deleted": True}
    path.write_text(json.dumps(again) + "\n")
    collect(tmp_path / "lake", [path])
    row = lake_rows(tmp_path / "lake")[f"reddit:post:{posts[2]['id']}"]
    assert row["is_deleted"] and row["body"] is None
