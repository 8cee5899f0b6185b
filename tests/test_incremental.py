"""Nightly runs recompute only what new documents change, and get the numbers a full recomputation gets.

Quick tests of the parts (intervals that depend on their own row, co-occurrence counts that add up, the lineage
plan and merge over a hand-built corpus); the end-to-end check (a lake, +1 % newest contributions, table by
table against a full recomputation on the same model) is ``tests/test_nightly.py`` (slow).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edumine.stats import bootstrap_share_interval


def test_a_share_interval_depends_on_its_own_counts_only() -> None:
    rng = np.random.default_rng(3)
    totals = rng.integers(1, 400, 300)
    hits = rng.integers(0, totals + 1)
    low, high = bootstrap_share_interval(hits, totals)
    some_low, some_high = bootstrap_share_interval(hits[100:140], totals[100:140])
    np.testing.assert_array_equal(some_low, low[100:140])
    np.testing.assert_array_equal(some_high, high[100:140])
    # It is the percentile bootstrap: the same as drawing the binomials and taking percentiles.
    from scipy.stats import binom

    uniforms = np.random.default_rng(0).random(2000)
    for row in range(0, 300, 37):
        draws = binom.ppf(uniforms, totals[row], hits[row] / totals[row]) / totals[row]
        np.testing.assert_allclose(np.quantile(draws, [0.025, 0.975]), [low[row], high[row]], rtol=1e-12)
        assert low[row] <= hits[row] / totals[row] <= high[row]
    empty_low, _ = bootstrap_share_interval(np.array([0, 3]), np.array([0, 9]))
    assert np.isnan(empty_low[0]) and not np.isnan(empty_low[1])


def test_cooccurrence_counts_add_up_to_a_recount(tmp_path) -> None:
    from edumine.models.topics.evaluation import Cooccurrence, npmi_per_topic

    rng = np.random.default_rng(1)
    vocabulary = [f"w{i}" for i in range(60)]
    texts = [list(rng.choice(vocabulary, size=int(rng.integers(1, 40)))) for _ in range(500)]
    topics = [vocabulary[:10], vocabulary[5:15], vocabulary[30:40]]
    words = {w for t in topics for w in t}
    old = Cooccurrence.count(words, texts[:495], 10)
    old.save(tmp_path / "counts.npz")
    added = Cooccurrence.load(tmp_path / "counts.npz").add(texts[495:])
    whole = Cooccurrence.count(words, texts, 10)
    np.testing.assert_array_equal(added.co, whole.co)
    assert (added.n_windows, added.docs) == (whole.n_windows, whole.docs) == (whole.n_windows, 500)
    np.testing.assert_array_equal(added.npmi_per_topic(topics), npmi_per_topic(topics, texts, window_size=10))
    assert added.covers(topics, 10) and not added.covers([["w0", "unseen"]], 10)


def _frame(counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = []
    for (community, day), n in counts.items():
        rows += [{"uid": f"{community}-{day}-{k}", "community": community, "created_at": pd.Timestamp(day, tz="UTC"),
                  "topic_id": k % 3, "text_hash": str(k)} for k in range(n)]
    return pd.DataFrame(rows)


def test_the_plan_recomputes_the_window_pairs_that_changed() -> None:
    from edumine.models.lineage.incremental import plan_units, window_fingerprints

    days = ["2017-02-01", "2017-08-01", "2018-02-01", "2018-08-01"]
    before = _frame({("a", d): 30 for d in days} | {("b", d): 30 for d in days[:3]})
    old = window_fingerprints(before, "semester", True, "x")
    assert plan_units(old, old, 20).recompute == set()
    newer = pd.concat([before, _frame({("b", "2018-08-01"): 30})], ignore_index=True)
    plan = plan_units(old, window_fingerprints(newer, "semester", True, "x"), 20)
    last = int(np.datetime64("2018-07-01", "D").astype(np.int64))
    assert plan.recompute == {("all", last), ("b", last)}  # b's 2018H2 is new; a's windows did not change
    assert ("a", last) in plan.keep and not plan.full
    assert plan.windows == {last, int(np.datetime64("2018-01-01", "D").astype(np.int64))}
    # A window that reaches min_window_docs changes its successor's predecessor: that pair is recomputed.
    thin = _frame({("c", days[0]): 30, ("c", days[1]): 5, ("c", days[2]): 30})
    grown = pd.concat([thin, _frame({("c", days[1]): 30}).assign(uid=lambda f: "x" + f["uid"])], ignore_index=True)
    plan = plan_units(window_fingerprints(thin, "semester", False, "x"),
                      window_fingerprints(grown, "semester", False, "x"), 20)
    assert {w for _, w in plan.recompute} == {int(np.datetime64(d, "D").astype(np.int64))
                                              for d in ("2017-07-01", "2018-01-01")}
    assert plan_units(old, old.assign(basis="y"), 20).full


def test_lineage_on_changed_windows_equals_a_full_fit() -> None:
    """Fit on all docs, and on the windows the plan names merged with the old rows: the same tables."""
    import pyarrow as pa

    from edumine.models.lineage.incremental import merge_units, plan_units, window_fingerprints
    from edumine.models.lineage.tracking import WindowLineage
    from edumine.pipelines.stages.lineage import lineage_tables

    rng = np.random.default_rng(5)
    rows, vectors = [], []
    for w, day in enumerate(["2016-03-01", "2016-09-01", "2017-03-01", "2017-09-01", "2018-03-01"]):
        for community in ("a", "b"):
            for k in range(int(rng.integers(40, 90))):
                topic = int(rng.integers(0, 5 + w % 2))
                rows.append({"uid": f"{community}{day}{k}", "community": community, "topic_id": topic,
                             "created_at": pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=int(rng.integers(0, 150))),
                             "lemmas": "", "text_hash": f"h{k}"})
                vectors.append(np.eye(8)[topic] + rng.normal(0, 0.3, 8))
    docs, vectors = pd.DataFrame(rows), np.array(vectors)
    center = vectors.mean(axis=0)
    newest = docs["created_at"] >= pd.Timestamp("2018-07-01", tz="UTC")
    newest.iloc[-20:] = True  # 20 docs land after the last window: a new window
    docs.loc[newest.to_numpy(), "created_at"] = pd.Timestamp("2018-08-01", tz="UTC")
    old_docs, old_vectors = docs[~newest].reset_index(drop=True), vectors[~newest.to_numpy()]
    lineage = WindowLineage(unit="semester", min_window_docs=30, min_topic_docs=3)

    def tables(frame: pd.DataFrame, vecs: np.ndarray) -> tuple[pa.Table, pa.Table]:
        return lineage_tables(lineage.fit(frame, vecs, center=center))

    old_fp = window_fingerprints(old_docs, "semester", True, "b")
    new_fp = window_fingerprints(docs, "semester", True, "b")
    old_edges, old_events = tables(old_docs, old_vectors)
    plan = plan_units(old_fp, new_fp, 30)
    assert plan.keep and plan.recompute
    starts = np.asarray(docs["created_at"].dt.tz_localize(None).to_numpy().astype("datetime64[M]"))
    from edumine.windows import window_starts

    days = window_starts(docs["created_at"], "semester").astype("datetime64[D]").astype(np.int64)
    subset = np.isin(days, sorted(plan.windows))
    assert subset.sum() < len(docs) and len(starts)
    fresh_edges, fresh_events = tables(docs[subset].reset_index(drop=True), vectors[subset])
    edges = merge_units(old_edges, fresh_edges, "to_window_start", plan,
                        ["community", "to_window_start", "from_topic", "to_topic"])
    events = merge_units(old_events, fresh_events, "window_start", plan, ["community", "window_start", "topic_id"])
    full_edges, full_events = tables(docs, vectors)
    assert full_events.num_rows > 20
    assert edges.equals(full_edges.cast(edges.schema))
    assert events.equals(full_events.cast(events.schema))


@pytest.mark.parametrize("unit", ["semester"])
def test_full_plan_without_state(unit: str) -> None:
    from edumine.models.lineage.incremental import plan_units, window_fingerprints

    fp = window_fingerprints(_frame({("a", "2017-02-01"): 30, ("a", "2017-08-01"): 30}), unit, True, "x")
    plan = plan_units(None, fp, 20)
    assert plan.full and len(plan.recompute) == 2 and plan.reason


def test_activity_of_changed_windows_equals_a_full_recomputation(default_lake) -> None:
    """Real posts and comments (the shared corpora): the newest 1 % of the records (by created_at) and a
    handful of older comments arrive in a later collection run. The nightly table equals the full one."""
    import pyarrow as pa

    from edumine.lake import Lake
    from edumine.models.participation import (RECORD_COLUMNS, incremental_activity, participation_metrics,
                                              records_frame)
    from edumine.pipelines.stages.metrics import activity_table

    records = records_frame(Lake(default_lake).read_posts(columns=RECORD_COLUMNS))
    records = records.sort_values(["created_at", "uid"], ignore_index=True)
    late = np.zeros(len(records), dtype=bool)
    late[-max(1, len(records) // 100):] = True
    comments = np.flatnonzero((records["kind"] == "comment").to_numpy() & ~late)
    late[comments[:: max(1, len(comments) // 7)]] = True  # late comments on older threads, too
    records["ingest_run"] = np.where(late, "night", "day")
    for unit in ("semester", "month"):
        def roundtrip(frame: pd.DataFrame) -> pd.DataFrame:  # as the stage reads the last run's table back
            return activity_table(frame).to_pandas()

        old = roundtrip(participation_metrics(records[~late], unit))
        nightly, counts = incremental_activity(records, {"day"}, old, unit)
        full = participation_metrics(records, unit)
        assert 0 < counts["windows_recomputed"] < len(full) and counts["windows_kept"] > 0
        assert activity_table(nightly).equals(activity_table(full)), unit
        same, _ = incremental_activity(records, {"day", "night"}, roundtrip(full), unit)
        assert activity_table(same).equals(activity_table(full))
        assert isinstance(pa.table({"x": [1]}), pa.Table)
