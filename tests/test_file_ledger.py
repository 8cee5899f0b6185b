"""A collection leaves out the dump files it read before and that have not changed; a changed file is read whole.

miners/file_ledger.py: a file is skipped only when its path, size, mtime and the digest of its first and last
MiB are those recorded after the last collection that read it completely, for the same source settings.
Real lines of r/teachingresources' 2017-18 dump, as plain NDJSON (so a test can edit bytes in place).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import zstandard

from conftest import CORPORA, make_config
from edumine.lake import Lake
from edumine.pipelines.runner import run_collect


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    path = CORPORA / "reddit-teaching-2017-18" / "teachingresources_submissions.zst"
    with open(path, "rb") as handle:
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle)
        found = [line.rstrip(b"\n") for line in io.BufferedReader(reader) if line.strip()]
    assert len(found) > 300
    return found


def _collect(lake: Path, folder: Path, **source: object) -> dict:
    config = make_config(lake, [{"kind": "reddit.dumps.v1", "paths": [f"{folder}/*.jsonl"], **source}])
    return run_collect(config).inputs[0]


def _uids(lake: Path) -> list[str]:
    return sorted(Lake(lake).read_posts(columns=["uid"])["uid"].to_pylist())


def test_an_unchanged_dump_is_not_read_again_and_a_changed_one_is_read_whole(tmp_path: Path, lines) -> None:
    folder, lake = tmp_path / "dumps", tmp_path / "lake"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(b"\n".join(lines[:200]) + b"\n")
    (folder / "b.jsonl").write_bytes(b"\n".join(lines[200:300]) + b"\n")
    first = _collect(lake, folder)
    assert first["records"] == first["added"] == 300 and "unchanged_files" not in first["notes"]
    stored = _uids(lake)

    again = _collect(lake, folder)
    assert again["notes"]["unchanged_files"] == 2 and again["records"] == 0 and again["files"] == {}
    assert _uids(lake) == stored

    # New lines appended to b: b is read whole (its 100 old lines are duplicates), a is still skipped.
    with open(folder / "b.jsonl", "ab") as handle:
        handle.write(b"\n".join(lines[300:]) + b"\n")
    grown = _collect(lake, folder)
    assert grown["notes"]["unchanged_files"] == 1 and list(grown["files"]) == [str(folder / "b.jsonl")]
    assert grown["records"] == len(lines) - 200 and grown["added"] == len(lines) - 300
    assert grown["duplicates"] == 100 and len(_uids(lake)) == len(lines)
    assert _collect(lake, folder)["notes"]["unchanged_files"] == 2


def test_same_size_and_mtime_but_other_bytes_is_read_again(tmp_path: Path, lines) -> None:
    """A rewrite that keeps the size and the modification time is caught by the digest of the file's end."""
    folder, lake = tmp_path / "dumps", tmp_path / "lake"
    folder.mkdir()
    path = folder / "a.jsonl"
    path.write_bytes(b"\n".join(lines[:100]) + b"\n")
    _collect(lake, folder)
    before = path.stat()
    data = bytearray(path.read_bytes())
    index = data.rindex(b'"score":') + len(b'"score":')
    data[index: index + 1] = b"7" if data[index: index + 1] != b"7" else b"8"  # one digit of the last score
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    again = _collect(lake, folder)
    assert "unchanged_files" not in again["notes"] and again["records"] == 100


def test_other_settings_or_the_switch_off_read_every_file(tmp_path: Path, lines) -> None:
    folder, lake = tmp_path / "dumps", tmp_path / "lake"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(b"\n".join(lines[:100]) + b"\n")
    _collect(lake, folder)
    # Another filter may yield other records from the same file: read again.
    assert _collect(lake, folder, since="2017-01-01")["records"] == 100
    config = make_config(lake, [{"kind": "reddit.dumps.v1", "paths": [f"{folder}/*.jsonl"]}],
                         collect={"skip_unchanged_files": False})
    assert run_collect(config).inputs[0]["records"] == 100


def test_a_file_cut_short_is_read_again_next_time(tmp_path: Path, lines) -> None:
    folder, lake = tmp_path / "dumps", tmp_path / "lake"
    folder.mkdir()
    whole = zstandard.ZstdCompressor().compress(b"\n".join(lines[:150]) + b"\n")
    (folder / "a.jsonl.zst").write_bytes(whole[: len(whole) * 2 // 3])  # a download cut short
    config = make_config(lake, [{"kind": "reddit.dumps.v1", "paths": [f"{folder}/*.zst"]}])
    first = run_collect(config).inputs[0]
    assert first["quarantined"].get("unreadable_file") == 1
    second = run_collect(config).inputs[0]
    assert "unchanged_files" not in second["notes"] and second["quarantined"].get("unreadable_file") == 1
