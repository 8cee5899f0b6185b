"""Damaged files (edumine/integrity.py, issue 16 item 5): found where they are read, named, and rebuilt from their
inputs by the stage that owns them; posts are a clear error; a lost topic-id registry is rebuilt, never
renumbered. The end-to-end cells (damage a lake, rerun, compare with an undamaged run) are in
tests/test_damage_matrix.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from edumine import integrity
from edumine.errors import EdumineError
from edumine.lake import Lake, write_parquet_atomic

from conftest import make_config
from dumpfiles import submission, write_zst


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble(path: Path) -> None:
    """Flip bytes inside the data of a Parquet file's first column chunk (the footer still reads, a page does not
    add up), or in the middle of any other file."""
    data = bytearray(path.read_bytes())
    try:
        column = pq.ParquetFile(path).metadata.row_group(0).column(0)
        first = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
        start = first + column.total_compressed_size - 10
    except Exception:  # noqa: BLE001  (not Parquet)
        start = len(data) // 3
    for i in range(start, start + 6):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


DAMAGE = {"truncate": truncate, "garble": garble, "delete": lambda p: p.unlink()}


def _table(n: int = 5000, name: str = "doc_topics") -> pa.Table:
    """Rows of a catalog table (its declared schema, tests/fixtures_catalog.py)."""
    from edumine.catalog import entry
    from fixtures_catalog import make_table

    table = make_table(name, {"uid": [f"u{i}" for i in range(n)],
                              **({"topic_id": list(range(n))} if name == "doc_topics" else {})})
    partitions = list(entry(name).partitioning)
    return table.drop_columns(partitions) if partitions else table


@pytest.mark.parametrize("kind", ["truncate", "garble"])
def test_lake_read_names_the_table_and_the_damaged_file(tmp_path: Path, kind: str) -> None:
    lake = Lake(tmp_path / "lake")
    lake.write("doc_topics", _table())
    DAMAGE[kind](lake.table_path("doc_topics") / "part-0.parquet")
    with pytest.raises(integrity.CorruptTable) as caught:
        lake.read("doc_topics")
    error = caught.value
    assert error.table == "doc_topics" and error.path.name == "part-0.parquet" and error.owner == "topics"
    assert "cannot be read" in str(error) and "topics stage" in str(error) and not error.raw


def test_a_garbled_page_is_found_by_its_checksum_not_read_as_other_values(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    write_parquet_atomic(pa.table({"x": pa.array(range(20_000), pa.int64())}), path)
    assert integrity.check_parquet(path) is None
    garble(path)
    assert "CRC" in integrity.check_parquet(path) or "checksum" in integrity.check_parquet(path).lower()


def test_a_file_whose_schema_does_not_fit_its_table_is_damage(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    folder = lake.table_path("docs") / "platform=reddit" / "community=t"
    write_parquet_atomic(pa.table({"uid": ["a"], "n_tokens": pa.array([3], pa.int64())}),
                         folder / "month=2018-01" / "part-0.parquet")
    write_parquet_atomic(pa.table({"uid": ["b"], "n_tokens": ["three"]}), folder / "month=2018-02" / "part-0.parquet")
    with pytest.raises(integrity.CorruptTable, match="month=2018-02.*schema does not fit.*n_tokens"):
        lake.read("docs")


def test_a_damaged_partition_is_an_error_naming_it_not_silently_missing(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.write_partition("docs", "platform=reddit/community=t/month=2018-01", _table(name="docs"))
    garble(lake.table_path("docs") / "platform=reddit/community=t/month=2018-01/part-0.parquet")
    with pytest.raises(integrity.CorruptTable, match="month=2018-01"):
        lake.read_partition("docs", "platform=reddit/community=t/month=2018-01")


@pytest.mark.parametrize("kind", ["truncate", "garble", "delete"])
def test_a_sealed_model_folder_detects_each_kind_of_damage(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "model"
    (folder / "bertopic").mkdir(parents=True)
    (folder / "bertopic" / "topics.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "manifest.json").write_text('{"run_id": "r1"}')
    digest = integrity.seal(folder)
    assert integrity.verify(folder, "the saved topic model", seal_digest=digest)
    DAMAGE[kind](folder / "bertopic" / "topics.safetensors")
    with pytest.raises(integrity.CorruptArtefact, match="topics.safetensors"):
        integrity.verify(folder, "the saved topic model", seal_digest=digest)


def test_a_lost_seal_is_damage_when_the_pointer_recorded_one(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    digest = integrity.seal(folder)
    (folder / integrity.SEAL).unlink()
    assert integrity.verify(folder, "m") is False  # a folder saved before seals existed
    with pytest.raises(integrity.CorruptArtefact, match="checksums.json is missing"):
        integrity.verify(folder, "m", seal_digest=digest)


# -- the topic-id registry ------------------------------------------------------------------------------------

def _two_fits(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Two refits' registry and history, and a sealed model folder keeping their copies, as the topic stage
    leaves them (ids_rebuild.save_copies inside the model's folder, then the runner seals it)."""
    import numpy as np

    from edumine.models.topics.ids import TopicSignatures, assign_stable_ids
    from edumine.models.topics.ids_rebuild import save_copies

    eye = np.eye(6)

    def signatures(ids: list[int], centroids: np.ndarray) -> TopicSignatures:
        return TopicSignatures(model_ids=ids, terms=[[(f"w{i}", 1.0)] for i in ids], centroids=centroids,
                               embedding_key="k", labels=[f"t{i}" for i in ids], sizes=[10] * len(ids))

    _, registry, history = assign_stable_ids(None, None, "run-1", signatures([0, 1, 2, 3], eye[:4]))
    _, registry, history = assign_stable_ids(registry, history, "run-2",
                                             signatures([0, 1], np.vstack([eye[3], eye[4]])))  # 0-2 retired, 4 new
    folder = tmp_path / "models" / "topics" / "run-2"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    save_copies(folder, {"topic_ids": registry, "topic_id_history": history})
    integrity.seal(folder)
    return registry, history, folder


def test_a_lost_registry_is_rebuilt_exactly_from_the_saved_models_copy(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from edumine.models.topics.ids_rebuild import rebuild_registry

    registry, history, folder = _two_fits(tmp_path)
    assert int(registry["stable_id"].max()) == 4
    notes: list[str] = []
    with integrity.noting(notes.append):
        rebuilt = rebuild_registry(None, history, folder, saved_model=True)
    pd.testing.assert_frame_equal(rebuilt, registry.sort_values("stable_id").reset_index(drop=True),
                                  check_dtype=False)
    assert notes and "rebuilt from the copy kept by the latest saved topic model" in notes[0]


def test_a_rebuilt_registry_keeps_every_issued_id_so_the_next_new_topic_is_not_a_reused_id(tmp_path: Path) -> None:
    import numpy as np

    from edumine.models.topics.ids import TopicSignatures, add_stable_ids
    from edumine.models.topics.ids_rebuild import rebuild_registry

    _, history, folder = _two_fits(tmp_path)
    # The history knows an id the copy does not (id 7, e.g. issued by a run whose model copy was older):
    extra = pd.DataFrame([{"run_id": "run-3", "model_topic": 9, "stable_id": 7, "similarity": None,
                           "status": "new", "label": "t7", "size": 3}])
    history = pd.concat([history, extra], ignore_index=True)
    rebuilt = rebuild_registry(None, history, folder, saved_model=True)
    assert 7 in set(rebuilt["stable_id"]) and not rebuilt.set_index("stable_id").loc[7, "active"]
    mapping, _, _ = add_stable_ids(rebuilt, history, "run-4", TopicSignatures(
        model_ids=[5], terms=[[("new", 1.0)]], centroids=np.eye(6)[5:6], embedding_key="k"))
    assert mapping == {5: 8}


def test_a_registry_that_cannot_be_rebuilt_is_a_clear_error_not_a_renumbering(tmp_path: Path) -> None:
    from edumine.models.topics.ids_rebuild import intact, rebuild_registry

    _, history, folder = _two_fits(tmp_path)
    garble(folder / "stable_ids" / "topic_ids.parquet")  # the copy is damaged: the model fails its checksums
    assert intact(folder, None) is None
    with pytest.raises(EdumineError) as caught:
        rebuild_registry(None, None, None, saved_model=True, lake="LAKE")
    message = str(caught.value)
    assert "topic-id registry" in message and "cannot be rebuilt" in message and "renumber" in message
    assert "backup" in message and "LAKE" in message  # what, where, how to fix


def test_a_lost_history_comes_back_from_the_models_copy(tmp_path: Path) -> None:
    from edumine.models.topics.ids_rebuild import restore_history

    _, history, folder = _two_fits(tmp_path)
    pd.testing.assert_frame_equal(restore_history(None, folder), history, check_dtype=False)


def test_before_the_first_fit_there_is_nothing_to_rebuild() -> None:
    from edumine.models.topics.ids_rebuild import rebuild_registry

    assert rebuild_registry(None, None, None, saved_model=False) is None


def test_a_damaged_registry_in_the_lake_is_a_corrupt_table_the_runner_rebuilds(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    registry, _, _ = _two_fits(tmp_path)
    lake.write("topic_ids", pa.Table.from_pandas(registry, preserve_index=False))
    garble(lake.table_path("topic_ids") / "part-0.parquet")
    with pytest.raises(integrity.CorruptTable) as caught:
        lake.read("topic_ids")
    assert caught.value.owner == "topics" and not caught.value.raw


# -- the runner: rebuild from inputs, posts are final ---------------------------------------------------------

def _small_lake(tmp_path: Path):  # noqa: ANN202
    from edumine.pipelines.runner import run_pipeline

    posts = [submission(f"p{i}", created=1514764800 + i * 86400 * 20, title=f"classroom lesson plan number {i}",
                        selftext="students teachers grading homework classroom behaviour lesson") for i in range(40)]
    dump = write_zst(tmp_path / "in" / "a.zst", posts)
    config = make_config(tmp_path / "lake", [{"kind": "reddit.dumps.v1", "paths": [str(dump)]}])
    only = ["preprocess", "metrics", "paper_table"]
    run_pipeline(config, only=only)
    return config, only


def _tables(root: Path, name: str) -> list[str]:
    from test_crash_matrix import _rows

    return sorted(row for p in sorted((root / name).rglob("*.parquet")) for row in _rows(pq.read_table(p)))


@pytest.mark.parametrize("kind", ["truncate", "garble", "delete"])
def test_a_damaged_derived_table_is_rebuilt_by_its_stage_and_noted(tmp_path: Path, kind: str) -> None:
    from edumine.pipelines.runner import run_pipeline

    config, only = _small_lake(tmp_path)
    root = Path(config.lake)
    expected = {name: _tables(root, name) for name in ("docs", "community_activity", "paper_table")}
    DAMAGE[kind](next((root / "docs").rglob("*.parquet")))
    DAMAGE[kind](root / "community_activity" / "part-0.parquet")
    ctx = run_pipeline(config, only=only)
    assert {name: _tables(root, name) for name in expected} == expected
    manifest = json.loads(ctx.manifest_path.read_text())
    assert manifest["status"] == "completed"
    if kind != "delete":  # a deleted derived file is simply rebuilt; a damaged one is also reported
        assert any("docs" in note and "rebuil" in note for note in manifest["notes"]), manifest["notes"]


def test_damage_met_inside_a_stage_reruns_the_owner_stage_then_the_stage(tmp_path: Path) -> None:
    """paper_table reads community_activity (owner: metrics); a garbled page passes the run-start footer check
    and is found when paper_table reads it: metrics runs again, then paper_table."""
    from edumine.pipelines.runner import run_pipeline

    config, _ = _small_lake(tmp_path)
    root = Path(config.lake)
    expected = _tables(root, "paper_table")
    garble(root / "community_activity" / "part-0.parquet")
    ctx = run_pipeline(config, only=["paper_table"])
    manifest = json.loads(ctx.manifest_path.read_text())
    assert manifest["status"] == "completed", manifest["error"]
    assert any("'community_activity'" in n and "metrics stage" in n for n in manifest["notes"]), manifest["notes"]
    assert "metrics" in manifest["outputs"] and _tables(root, "paper_table") == expected


@pytest.mark.parametrize("kind", ["truncate", "garble"])
def test_damaged_posts_fail_the_run_with_a_clear_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    from edumine.pipelines.runner import run_pipeline

    config, only = _small_lake(tmp_path)
    part = next((Path(config.lake) / "posts").rglob("*.parquet"))
    DAMAGE[kind](part)
    with pytest.raises(integrity.CorruptTable) as caught:
        run_pipeline(config, only=only)
    message = str(caught.value)
    assert caught.value.raw and part.name in message and str(part.parent.name) in message
    assert "primary data" in message and "collect" in message and "backup" in message


def test_edumine_query_on_a_garbled_derived_table_says_so_without_a_traceback(tmp_path: Path) -> None:
    from edumine.cli import app

    config, _ = _small_lake(tmp_path)
    garble(Path(config.lake) / "community_activity" / "part-0.parquet")
    result = CliRunner().invoke(app, ["query", "select * from community_activity", "--lake", str(config.lake)])
    assert result.exit_code == 2, result.output
    assert "cannot be read" in result.output and "Traceback" not in result.output


def test_a_damaged_topic_model_is_never_loaded_an_incremental_run_refits_and_keeps_the_ids(tmp_path: Path) -> None:
    """The load -> refit path: the saved model fails its checksums, so the nightly update it was due for becomes
    a full refit from the docs (noted, with the reason), and the registry keeps the topics' ids."""
    from edumine.pipelines.runner import run_pipeline

    from test_topic_ids import _config

    lake = tmp_path / "lake"
    stages = ["preprocess", "topics"]
    first = run_pipeline(_config(lake, "2013-06-01", lineage={"update": {"mode": "refit"}}), only=stages)
    garble(next(Path(first.outputs["topics"]["model_dir"]).glob("bertopic/*.safetensors")))
    second = run_pipeline(_config(lake, "2013-09-01"), only=stages)
    update = second.outputs["topic_update"]
    assert update["mode"] == "refit" and "cannot be loaded" in update["reason"], update
    assert "CorruptArtefact" in update["reason"] and "does not match its checksum" in update["reason"]
    manifest = json.loads(second.manifest_path.read_text())
    assert any("full refit" in note for note in manifest["notes"]), manifest["notes"]
    assert update["stable_ids_kept"] > 0.5 * update["topics"]
    history = pd.read_parquet(lake / "topic_id_history" / "part-0.parquet")
    first_ids = set(history[history["run_id"] == first.run_id]["stable_id"])
    new_ids = set(history[(history["run_id"] == second.run_id) & (history["status"] == "new")]["stable_id"])
    assert not new_ids & first_ids and all(i > max(first_ids) for i in new_ids)


def test_edumine_catalog_on_a_truncated_table_names_the_file_without_a_traceback(tmp_path: Path) -> None:
    from edumine.cli import app

    lake = Lake(tmp_path / "lake")
    lake.write("doc_topics", _table())
    truncate(lake.table_path("doc_topics") / "part-0.parquet")
    result = CliRunner().invoke(app, ["catalog", "--lake", str(lake.root)])
    assert result.exit_code == 2, result.output
    assert "E-CORRUPT-TABLE" in result.output and "doc_topics" in result.output and "Traceback" not in result.output


def test_a_lost_update_log_comes_back_from_the_models_copy(tmp_path: Path) -> None:
    """``topic_updates`` says when the model was last refitted: lost, the next run would refit for no reason and
    the log of updates would start again; the model keeps a copy, as for the registry."""
    from edumine.models.topics.ids_rebuild import restore, save_copies

    folder = tmp_path / "model"
    folder.mkdir()
    updates = pd.DataFrame({"run_id": ["r1", "r2"], "mode": ["refit", "incremental"], "docs_total": [100, 110]})
    save_copies(folder, {"topic_updates": updates})
    integrity.seal(folder)
    pd.testing.assert_frame_equal(restore("topic_updates", None, folder), updates)
    assert restore("topic_updates", updates.iloc[:1], folder).equals(updates.iloc[:1])  # as read when not lost
