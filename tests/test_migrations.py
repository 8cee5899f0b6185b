"""Lake migrations: a lake written before the `window` -> `window_label` rename is brought up to date in place."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from edumine.cli import app
from edumine.migrations import migrate_lake


def _old_table(path: Path) -> pa.Table:
    table = pa.table({"window_start": pa.array([None], pa.date32()), "window": ["2018H1"], "community": ["teaching"],
                      "share": [0.25]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return table


def test_window_column_is_renamed_once_and_data_kept(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    before = _old_table(lake / "topic_prevalence" / "part-0.parquet")
    _old_table(lake / "theme_prevalence" / "part-0.parquet")
    pq.write_table(pa.table({"uid": ["x"], "window": ["kept"]}), _mk(lake / "posts" / "p.parquet"))  # not a window table

    changed = migrate_lake(lake)

    assert sorted(changed) == ["theme_prevalence/part-0.parquet", "topic_prevalence/part-0.parquet"]
    after = pq.read_table(lake / "topic_prevalence" / "part-0.parquet")
    assert after.column_names == ["window_start", "window_label", "community", "share"]
    assert after.column("window_label").to_pylist() == before.column("window").to_pylist()
    assert pq.read_table(lake / "posts" / "p.parquet").column_names == ["uid", "window"]
    assert migrate_lake(lake) == []  # idempotent


def test_migrate_command(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _old_table(lake / "topic_events" / "part-0.parquet")
    result = CliRunner().invoke(app, ["migrate", "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    assert "1 file(s) migrated" in result.output
    assert "window_label" in pq.read_schema(lake / "topic_events" / "part-0.parquet").names
    missing = CliRunner().invoke(app, ["migrate", "--lake", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no lake at" in missing.output


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_topic_events_get_an_explicit_scope(tmp_path: Path) -> None:
    """Regression: topic_events mixed the whole corpus's rows with each community's, so a plain count of
    'emerged' counted events twice; old lakes get the scope column."""
    lake = tmp_path / "lake"
    table = pa.table({"window_label": ["2018H1"] * 3, "community": ["all", "teaching", "all"], "topic_id": [1, 1, 2],
                      "event": ["emerged"] * 3})
    pq.write_table(table, _mk(lake / "topic_events" / "part-0.parquet"))

    assert migrate_lake(lake) == ["topic_events/part-0.parquet"]
    after = pq.read_table(lake / "topic_events" / "part-0.parquet")
    assert after.column_names == ["window_label", "community", "scope", "topic_id", "event"]
    assert after.column("scope").to_pylist() == ["all", "community", "all"]
    assert after.column("topic_id").to_pylist() == [1, 1, 2]
    assert migrate_lake(lake) == []  # idempotent


def test_artefacts_move_into_the_catalog_layout_once(tmp_path: Path) -> None:
    """`_cache` becomes `cache`, the unread `topic_windows` goes, and a theme model trained under the old
    `data/models/themes` (beside the demo lake `data/lake`) moves into the lake instead of being retrained."""
    lake = tmp_path / "data" / "lake"
    (lake / "_cache" / "embeddings" / "key").mkdir(parents=True)
    (lake / "_cache" / "embeddings" / "key" / "chunk-0.npz").write_bytes(b"vectors")
    _old_table(lake / "topic_windows" / "part-0.parquet")
    legacy = tmp_path / "data" / "models" / "themes" / "themes.tfidf_logreg.v1-abc"
    legacy.mkdir(parents=True)
    (legacy / "model.pkl").write_bytes(b"model")

    moved = migrate_lake(lake)
    assert len(moved) == 3 and not (lake / "_cache").exists() and not (lake / "topic_windows").exists()
    assert (lake / "cache" / "embeddings" / "key" / "chunk-0.npz").read_bytes() == b"vectors"
    assert (lake / "models" / "themes" / "themes.tfidf_logreg.v1-abc" / "model.pkl").read_bytes() == b"model"
    assert not legacy.exists()
    assert migrate_lake(lake) == []  # idempotent


def test_a_model_pickled_before_models_moved_into_subpackages_still_loads() -> None:
    """Regression: after models/ moved into subpackages, a theme model trained by an older edumine (pickled
    as `edumine.models.themes_calibration.ErrorRates`, ...) failed to load with AttributeError and stopped the run."""
    import io
    import pickle

    import numpy as np

    from edumine.migrations import MOVED_MODULES, load_pickle
    from edumine.models.themes.calibration import ErrorRates

    rates = ErrorRates(tp=np.array([3]), fn=np.array([1]), fp=np.array([0]), tn=np.array([6]))
    old = pickle.dumps(rates, protocol=0).replace(b"edumine.models.themes.calibration\n",
                                                  b"edumine.models.themes_calibration\n")
    assert b"edumine.models.themes_calibration\n" in old
    loaded = load_pickle(io.BytesIO(old))
    assert isinstance(loaded, ErrorRates) and loaded.tp.tolist() == [3]
    for new in MOVED_MODULES.values():  # every target of the map is a module that exists now
        __import__(new)
