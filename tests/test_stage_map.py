"""The pieces of partition-parallel stages that need no cluster: grouping, the map contract, and map steps that
give what the in-process code gives (the Dask run itself: tests/test_dask_stages.py)."""

import pickle
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from edumine.pipelines.stages.preprocess import partition_groups, preprocess_tables, settings_of
from edumine.pipelines.task_runners import call_packed, function_ref, stage_mapper
from edumine.stage_io import RunInfo, map_in_process


def test_partition_groups_keep_whole_partitions_in_order_and_balance_docs() -> None:
    sizes = [5, 40, 3, 3, 30, 10, 9]
    groups = partition_groups(sizes, workers=2)
    assert [i for group in groups for i in group] == list(range(len(sizes)))
    assert len(groups) >= 2 and all(groups)
    assert max(sum(sizes[i] for i in group) for group in groups) <= 40 + 25  # a big partition is never split
    assert partition_groups([7], workers=4) == [[0]]
    assert partition_groups([], workers=2) == []


def test_the_default_map_runs_in_order_in_this_process() -> None:
    assert RunInfo(run_id="r", windows_unit="month").map is map_in_process
    items = [{"text": "one two three four", "width": 9}, {"text": "five six", "width": 20}]
    assert map_in_process(textwrap.shorten, items) == ["one [...]", "five six"]
    with stage_mapper("default") as mapper:
        assert mapper is None
    with pytest.raises(ValueError, match="task_runner must be one of"):
        with stage_mapper("spark"):
            pass


def test_a_map_step_is_named_by_reference_and_runs_from_its_pickled_arguments() -> None:
    assert function_ref(preprocess_tables) == "edumine.pipelines.stages.preprocess:preprocess_tables"
    assert call_packed("textwrap:shorten", pickle.dumps({"text": "one two three four", "width": 9})) == "one [...]"
    with pytest.raises(ValueError, match="module-level function"):
        function_ref(lambda: None)


def test_preprocessing_in_groups_equals_one_stream() -> None:
    from edumine.models.text.preprocess import Preprocessor
    from edumine.pipelines.stages.preprocess import PreprocessConfig

    config = PreprocessConfig()
    rows = [{"title": f"Lesson plan {i}", "body": "Students were reading the novels we planned for the term "
             f"and teachers graded essays {i}", "link_url": None, "is_deleted": i % 7 == 0} for i in range(40)]
    rows[3]["body"] = "la classe était très bien préparée pour les examens de fin"
    table = pa.Table.from_pylist(rows)
    whole = list(Preprocessor(settings_of(config), batch_size=config.batch_size).process(rows))
    parts = [preprocess_tables([table.slice(0, 11)], settings_of(config), config.batch_size),
             preprocess_tables([table.slice(11, 5), table.slice(16)], settings_of(config), config.batch_size)]
    assert [r for part in parts for r in part] == whole
    assert {r.reason for r in whole} >= {"deleted", None}


def test_encoding_slices_on_a_worker_equals_encoding_all_at_once(tmp_path: Path) -> None:
    from edumine.models.embeddings.backends import embed_with_cache, make_embedder
    from edumine.models.embeddings.workers import encode_slice

    texts = [f"teacher student lesson {w} plan grade {w * 3 % 11} essay" for w in range(60)]
    uids, hashes = [f"u{i}" for i in range(60)], [f"h{i}" for i in range(60)]
    plain, _ = embed_with_cache(make_embedder("embeddings.tfidf_svd.v1", dims=8), tmp_path / "a", uids, hashes, texts)
    calls: list[int] = []

    def recording_map(function, items, *, name="partition"):
        calls.append(len(items))
        return map_in_process(function, items)

    mapped, info = embed_with_cache(make_embedder("embeddings.tfidf_svd.v1", dims=8), tmp_path / "b", uids, hashes,
                                    texts, map=recording_map, workers=2)
    assert calls == [2] and info["embedded"] == 60
    assert np.array_equal(plain, mapped)
    embedder = make_embedder("embeddings.tfidf_svd.v1", dims=8)
    with pytest.raises(RuntimeError, match="no fitted state"):
        encode_slice(embedder.name, embedder.params(), str(tmp_path / "nowhere"), "key", texts[:2])


def test_starting_worker_processes_leaves_this_process_thread_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: Dask's Nanny set OMP_NUM_THREADS=1 (and the like) in the flow's own environment, so scipy's
    BLAS, loaded later by the topic stage, ran on one thread and the fitted embedding state differed from the
    in-process run's in the last bits."""
    import os

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with stage_mapper("dask", workers=1) as mapper:
        assert mapper.workers == 1
        assert os.environ.get("OPENBLAS_NUM_THREADS") == "3" and "OMP_NUM_THREADS" not in os.environ
    assert os.environ.get("OPENBLAS_NUM_THREADS") == "3" and "OMP_NUM_THREADS" not in os.environ
