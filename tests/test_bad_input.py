"""Per-record isolation (issue 16 item 3): no value of any field aborts a run; what cannot be stored is
quarantined with its reason, and the manifest counts always equal what was written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from edumine.lake import Lake
from edumine.pipelines.runner import run_collect

from conftest import make_config
from dumpfiles import submission, write_zst

GOOD = 1514764800  # 2018-01-01

# Each bad value, the field it goes in, and the quarantine reason it must get (None: stored, coerced).
BAD_VALUES = [
    ("created_utc", 1e20, "bad_time"),
    ("created_utc", 10**30, "bad_time"),
    ("created_utc", -5, "bad_time"),
    ("created_utc", 0, "bad_time"),
    ("created_utc", True, "bad_time"),
    ("created_utc", 32503680000, "bad_time"),  # year 3000
    ("created_utc", "yesterday", "bad_time"),
    ("created_utc", [1, 2], "bad_time"),
    ("created_utc", None, "missing_time"),
    ("score", 10**30, "bad_field:score"),
    ("score", -(10**30), "bad_field:score"),
    ("num_comments", 2**63, "bad_field:num_comments"),
    ("author", {"name": "x"}, "bad_field:author"),
    ("title", ["a", "list"], None),    # the dump source writes it as text
    ("subreddit", 12345, None),        # a community named by a number: kept as text
    ("subreddit", {"a": 1}, "missing_community"),
    ("author", 12345, None),           # an all-digit user name: kept as text, then pseudonymised
    ("author", 1.5, None),
    ("score", "many", None),           # not a number: null, as before
    ("score", True, None),
    ("retrieved_on", 32503680000, None),  # a future retrieval time is dropped, not trusted
    ("edited", 1e20, None),             # an edit time no datetime holds: dropped
    ("selftext", "bad \ud800 surrogate", None),
]


def _config(lake: Path, *paths: str, **collect):
    return make_config(lake, [{"kind": "reddit.dumps.v1", "paths": list(paths)}], collect=collect or {})


def _lake_rows(lake: Path) -> list[dict]:
    return Lake(lake).read_posts().to_pylist()


def _quarantine(lake: Path) -> list[dict]:
    folder = lake / "quarantine"
    if not folder.exists():
        return []
    return ds.dataset(folder, format="parquet").to_table().to_pylist()


def test_every_bad_value_is_quarantined_or_coerced_and_the_run_completes(tmp_path: Path) -> None:
    objects = []
    for number, (field, value, _) in enumerate(BAD_VALUES):
        obj = submission(f"b{number}", created=GOOD + number)
        obj[field] = value
        objects.append(json.dumps(obj).replace('"\\ud800"', '"\\ud800"'))
    objects.append(submission("good", created=GOOD))
    dump = write_zst(tmp_path / "in" / "bad.zst", objects)
    ctx = run_collect(_config(tmp_path / "lake", str(dump)))
    report = ctx.inputs[0]
    stored = {r["id"]: r for r in _lake_rows(tmp_path / "lake")}
    quarantined = _quarantine(tmp_path / "lake")
    expected_q = {f"b{n}": reason for n, (_, _, reason) in enumerate(BAD_VALUES) if reason}
    assert sorted(stored) == sorted({f"b{n}" for n in range(len(BAD_VALUES))} - set(expected_q) | {"good"})
    got_q = {}
    for row in quarantined:
        got_q[re.search(r"""["']id["']: ["'](\w+)""", row["excerpt"]).group(1)] = row["reason"]
    assert got_q == expected_q
    # The manifest's counts are what was written.
    assert report["added"] == len(stored) and report["quarantined_total"] == len(quarantined)
    assert ctx.outputs["posts_rows"] == len(stored)
    assert report["records"] == report["added"] + report["updated"] + report["duplicates"]
    # Coercions are counted and visible.
    numbered = {n: f"b{n}" for n in range(len(BAD_VALUES))}
    assert stored[numbered[BAD_VALUES.index(("subreddit", 12345, None))]]["community"] == "12345"
    digits = stored[numbered[BAD_VALUES.index(("author", 12345, None))]]["author"]
    assert digits and "12345" not in digits  # pseudonymised like any name
    assert stored[numbered[BAD_VALUES.index(("retrieved_on", 32503680000, None))]]["retrieved_at"] is None
    assert "\ufffd" in stored[numbered[BAD_VALUES.index(("selftext", "bad \ud800 surrogate", None))]]["body"]
    windows = {r["created_at"].year for r in stored.values()}
    assert windows == {2018}
    files = report["files"]
    coerced = {k for counts in files.values() for k in counts if k.startswith(("coerced", "repaired"))}
    assert {"coerced_to_text:author", "coerced_to_null:retrieved_at", "repaired_text:body"} <= coerced


def test_the_plausible_range_is_configurable(tmp_path: Path) -> None:
    dump = write_zst(tmp_path / "in" / "old.zst", [submission("old", created=946684800),  # 2000-01-01
                                                   submission("new", created=GOOD)])
    default = run_collect(_config(tmp_path / "a", str(dump))).inputs[0]
    assert (default["added"], default["quarantined"]) == (1, {"bad_time": 1})
    wider = run_collect(_config(tmp_path / "b", str(dump), plausible_time={"since": "1995-01-01"})).inputs[0]
    assert (wider["added"], wider["quarantined_total"]) == (2, 0)
    narrow = run_collect(_config(tmp_path / "c", str(dump), plausible_time={"until": "2017-01-01"})).inputs[0]
    assert narrow["added"] == 0 and narrow["quarantined"] == {"bad_time": 2}


def _tabular(lake: Path, path: Path, **extra):
    return make_config(lake, [{"kind": "tabular.v1", "paths": [str(path)], "community": "teaching",
                               "columns": {"id": "id", "created": "created", "title": "title", "body": "body"},
                               **extra}])


def _csv(path: Path, rows: list[bytes], delimiter: bytes = b",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = delimiter.join([b"id", b"created", b"title", b"body"])
    path.write_bytes(b"\n".join([header, *rows]) + b"\n")
    return path


def test_a_csv_with_one_invalid_utf8_byte_loses_no_row(tmp_path: Path) -> None:
    rows = [f"r{i},{GOOD + i},title {i},body {i}".encode() for i in range(50)]
    rows[17] = b"r17," + str(GOOD + 17).encode() + b",caf\xe9 broken,body 17"
    ctx = run_collect(_tabular(tmp_path / "lake", _csv(tmp_path / "in" / "x.csv", rows)))
    report = ctx.inputs[0]
    assert report["added"] == 50 and report["quarantined_total"] == 0
    stored = {r["id"]: r for r in _lake_rows(tmp_path / "lake")}
    assert stored["r17"]["title"] == "caf\ufffd broken" and stored["r18"]["title"] == "title 18"
    assert sum(c.get("rows_with_replaced_bytes", 0) for c in report["files"].values()) == 1


def test_a_csv_with_the_wrong_delimiter_says_which_one_is_right(tmp_path: Path) -> None:
    rows = [f"r{i};{GOOD + i};title {i};body {i}".encode() for i in range(20)]
    path = _csv(tmp_path / "in" / "semi.csv", rows, delimiter=b";")
    report = run_collect(_tabular(tmp_path / "lake", path)).inputs[0]
    assert report["quarantined"] == {"wrong_delimiter": 1}
    detail = _quarantine(tmp_path / "lake")[0]["detail"]
    assert "';'" in detail and "delimiter" in detail
    fixed = run_collect(_tabular(tmp_path / "lake2", path, delimiter=";")).inputs[0]
    assert fixed["added"] == 20 and fixed["quarantined_total"] == 0


def test_a_csv_with_bad_values_loses_only_those_rows(tmp_path: Path) -> None:
    rows = [f"r{i},{GOOD + i},title {i},body {i}".encode() for i in range(10)]
    rows[3] = b"r3,1e20,title 3,body 3"
    rows[4] = b"r4,32503680000,title 4,body 4"
    rows[5] = b"r5,-1,title 5,body 5"
    report = run_collect(_tabular(tmp_path / "lake", _csv(tmp_path / "in" / "t.csv", rows))).inputs[0]
    assert report["added"] == 7 and report["quarantined"] == {"bad_time": 3}


@pytest.mark.parametrize("score", [10**30, 2**63])
def test_an_out_of_range_count_in_a_big_run_leaves_counts_equal_to_what_was_written(tmp_path: Path,
                                                                                    score: int) -> None:
    objects = [submission(f"p{i}", created=GOOD + i * 3600, subreddit=("teaching", "education")[i % 2])
               for i in range(400)]
    objects[250]["score"] = score
    dump = write_zst(tmp_path / "in" / "big.zst", objects)
    ctx = run_collect(_config(tmp_path / "lake", str(dump), chunk_rows=100))
    report = ctx.inputs[0]
    assert report["added"] == 399 == Lake(tmp_path / "lake").count_posts() == ctx.outputs["posts_rows"]
    assert report["quarantined"] == {"bad_field:score": 1}
