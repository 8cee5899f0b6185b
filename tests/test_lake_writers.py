"""PostsWriter's staging (Arrow IPC chunks read back memory-mapped, the last chunk held in memory) against the
merge's rules: every added row reaches the lake, one row per uid, the newest retrieval wins across chunks, ties keep
the first one added, and nothing is left in ``_staging``."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from edumine.lake import Lake
from edumine.lake_writers import PostsWriter
from edumine.schema import FILE_SCHEMA

T0 = datetime(2018, 1, 1, tzinfo=timezone.utc)


def record(uid: str, *, month: int = 1, retrieved: int = 100, body: str = "text") -> dict:
    return {"uid": f"reddit:post:{uid}", "kind": "post", "id": uid, "thread_uid": f"reddit:post:{uid}",
            "created_at": T0.replace(month=month) + timedelta(hours=len(uid)), "body": body, "source": "test",
            "retrieved_at": T0 + timedelta(days=retrieved), "retrieval_estimated": False, "is_deleted": False}


def key(month: int) -> tuple[str, str, str]:
    return ("reddit", "teaching", f"2018-{month:02d}")


def as_table(records: list[dict], month: int) -> pa.Table:
    table = pa.Table.from_pylist(records, schema=FILE_SCHEMA)
    for name, value in zip(("platform", "community", "month"), key(month)):
        table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return table


def test_records_and_tables_in_one_writer_all_reach_the_lake(tmp_path: Path) -> None:
    # Before, a chunk staged a partition's table rows and its record rows to the same file name, so the records
    # overwrote the tables' rows of that partition and chunk.
    lake = Lake(tmp_path / "lake")
    writer = PostsWriter(lake, "run", chunk_rows=5)
    expected = set()
    for n in range(12):
        month = 1 + n % 2
        if n % 3:
            writer.add(record(f"r{n}", month=month), key(month))
        else:
            writer.add_table(as_table([record(f"t{n}", month=month), record(f"u{n}", month=month)], month))
            expected.add(f"reddit:post:u{n}")
        expected.add(f"reddit:post:{'r' if n % 3 else 't'}{n}")
    assert list((writer.stage_root).glob("chunk-*.arrow"))  # some chunks were staged on disk
    counts = writer.commit()
    stored = lake.read_posts()
    assert sorted(stored["uid"].to_pylist()) == sorted(expected)
    assert counts.added == len(expected) and counts.partitions_rewritten == 2
    assert not lake.staging.exists()


def test_newest_retrieval_wins_across_staged_chunks_and_the_held_one(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    writer = PostsWriter(lake, "run", chunk_rows=3)
    versions = [("old", 100), ("newest", 300), ("newest tie", 300), ("older", 200)]
    for number, (body, retrieved) in enumerate(versions):
        fillers = [record(f"f{number}{i}", month=1 + i % 2) for i in range(2)]
        writer.add_table(pa.concat_tables([as_table([record("x", retrieved=retrieved, body=body)], 1),
                                           as_table(fillers[:1], 1), as_table(fillers[1:], 2)]))
    writer.add_table(as_table([record("x", retrieved=250, body="held")], 1))  # stays in memory until commit
    counts = writer.commit()
    rows = {r["uid"]: r for r in lake.read_posts().to_pylist()}
    assert rows["reddit:post:x"]["body"] == "newest"  # a tie keeps the first one added
    assert len(rows) == 1 + 2 * len(versions)
    assert counts.duplicates == len(versions)  # five versions of x, one kept
    by_month = {m: sum(1 for r in rows.values() if r["month"] == f"2018-{m:02d}") for m in (1, 2)}
    assert by_month == {1: 1 + len(versions), 2: len(versions)}
