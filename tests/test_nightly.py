"""A nightly run (the newest 1 % of contributions added) gives, table by table, what a full recomputation over
all docs gives with the same fitted topic model (docs/performance.md, issue 12 item 3).

The r/teaching and r/teachingresources dumps of 2017-18 (posts and comments with their reply structure),
monthly windows: a pipeline run over the older 99 %, then the newest 1 % arrive as two more dump files and a
second run updates the lake (the topic model is updated, not refitted; lineage, metrics and the store recompute
only what changed; NPMI comes from the last run's counts plus the new docs'). A copy of that lake without the
incremental state (``lineage_windows``, ``activity_runs``, the store) reruns lineage, metrics and the store over
everything: the tables must be equal, and so must the NPMI the topic stage reported and a recount over all docs.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

STAGES = ["preprocess", "topics", "lineage", "metrics", "store"]


def _split_dumps(source: Path, base: Path, new: Path, share: float = 0.01) -> int:
    """The dumps' lines split by created_utc: the newest ``share`` into ``new``; returns how many."""
    import orjson
    import zstandard

    lines = []
    for path in sorted(source.glob("*.zst")):
        with open(path, "rb") as handle:
            reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle)
            for line in io.TextIOWrapper(reader, encoding="utf-8"):
                if line.strip():
                    lines.append((int(float(orjson.loads(line)["created_utc"])), path.name, line))
    lines.sort(key=lambda item: (item[0], item[1], item[2]))
    cut = len(lines) - max(1, round(share * len(lines)))
    for folder, part, suffix in ((base, lines[:cut], ""), (new, lines[cut:], "_new")):
        folder.mkdir(parents=True, exist_ok=True)
        by_file: dict[str, list[str]] = {}
        for _, name, line in part:
            by_file.setdefault(name, []).append(line)
        for name, chunk in by_file.items():
            target = folder / name.replace(".zst", f"{suffix}.zst").replace("_submissions_new", "_new_submissions") \
                .replace("_comments_new", "_new_comments")
            target.write_bytes(zstandard.ZstdCompressor().compress("".join(chunk).encode()))
    return len(lines) - cut


def _table(lake: Path, name: str):  # noqa: ANN202
    from edumine.lake import Lake

    return Lake(lake).read(name)


def test_nightly_equals_full_recomputation(tmp_path: Path) -> None:
    import duckdb

    from conftest import CORPORA, make_config
    from edumine.models.topics.evaluation import Cooccurrence
    from edumine.models.topics.model import TopicModel
    from edumine.pipelines.runner import run_pipeline

    dumps = tmp_path / "dumps"
    added = _split_dumps(CORPORA / "reddit-teaching-2017-18", dumps, tmp_path / "new")
    lake = tmp_path / "lake"
    sources = [{"kind": "reddit.dumps.v1", "name": "teaching", "paths": [f"{dumps}/*.zst"]}]
    config = make_config(lake, sources=sources, windows={"unit": "month"})
    run_pipeline(config, only=STAGES)
    for path in (tmp_path / "new").iterdir():
        shutil.copy(path, dumps / path.name)
    nightly = run_pipeline(config, only=STAGES)
    outputs = nightly.outputs
    assert outputs["topic_update"]["mode"] == "incremental" and outputs["topic_update"]["docs_new"] > 0
    assert added > 0
    assert outputs["topics"]["npmi_counted"].startswith("the last run's counts plus")
    assert 0 < outputs["lineage"]["pairs_recomputed"] < outputs["lineage"]["pairs_recomputed"] + \
        outputs["lineage"]["pairs_kept"]
    assert outputs["metrics"]["windows_kept"] > 0 and outputs["metrics"]["windows_recomputed"] > 0
    assert "community_activity" in outputs["store"]["tables_replaced"]

    # The same lake, recomputed from scratch by lineage, metrics and the store (same topic model and doc_topics).
    full_lake = tmp_path / "full" / "lake"
    shutil.copytree(lake, full_lake)
    for name in ("lineage_windows", "activity_runs", "topic_lineage", "topic_events", "community_activity",
                 "summary.duckdb"):
        target = full_lake / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    full = run_pipeline(make_config(full_lake, sources=sources, windows={"unit": "month"}),
                        only=["lineage", "metrics", "store"])
    assert full.outputs["lineage"]["pairs_kept"] == 0 and full.outputs["metrics"]["windows_kept"] == 0
    for name in ("topic_lineage", "topic_events", "community_activity"):
        incremental, recomputed = _table(lake, name), _table(full_lake, name)
        assert incremental.num_rows > 0, name
        assert incremental.equals(recomputed.select(incremental.column_names)), name
    with duckdb.connect(str(lake / "summary.duckdb"), read_only=True) as a, \
            duckdb.connect(str(full_lake / "summary.duckdb"), read_only=True) as b:
        for name in ("community_activity", "topics", "topic_prevalence", "topic_events", "topic_lineage"):
            query = f'SELECT * FROM "{name}" ORDER BY ALL'
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), name

    # NPMI: the last run's counts plus the new docs' = a recount over every doc, with the same model.
    model_dir = Path(outputs["topics"]["model_dir"])
    saved = Cooccurrence.load(model_dir / "npmi_counts.npz")
    inner = TopicModel.load(model_dir)
    analyzer = inner.model_.vectorizer_model.build_analyzer()
    docs = _table(lake, "docs").to_pandas()
    docs = docs[docs["usable"]].sort_values("uid")
    recount = Cooccurrence.count(saved.words, (analyzer(text) for text in docs["lemmas"]), saved.window_size)
    np.testing.assert_array_equal(saved.co, recount.co)
    assert (saved.n_windows, saved.docs) == (recount.n_windows, len(docs))
    topics = _table(lake, "topics").to_pandas()
    words = [list(terms) for t, terms in zip(topics["topic_id"], topics["top_terms"]) if t != -1]
    scores = recount.npmi_per_topic(words, top_n=10)
    assert round(float(np.nanmean(scores)), 5) == nightly.scores["topics"]["npmi"]
