"""Participation metrics: hand-checked cases, and every metric recomputed independently with plain pandas
on the raw r/teachingresources 2017-18 dump (semester windows)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zstandard

from conftest import CORPORA, make_config
from edumine.models.participation import COLUMNS, RECORD_COLUMNS, participation_metrics, records_frame

DUMPS = CORPORA / "reddit-teaching-2017-18"
DELETED = {"[deleted]", "[removed]", ""}


def _records(rows: list[tuple]) -> pd.DataFrame:
    """(uid, kind, parent_uid, thread_uid, author, 'YYYY-MM-DD') -> a records frame."""
    frame = pd.DataFrame(rows, columns=["uid", "kind", "parent_uid", "thread_uid", "author", "day"])
    frame["created_at"] = pd.to_datetime(frame.pop("day"), utc=True)
    frame["platform"], frame["community"] = "reddit", "teaching"
    return frame


def test_people_are_counted_once_and_unknown_authors_never_as_one_person() -> None:
    rows = [
        ("p1", "post", None, "p1", "ann", "2018-02-01"),
        ("c1", "comment", "p1", "p1", "bob", "2018-02-02"),
        ("c2", "comment", "c1", "p1", "bob", "2018-02-03"),
        ("c3", "comment", "c2", "p1", "ann", "2018-02-03"),   # ann answers in her own thread
        ("c4", "comment", "p1", "p1", None, "2018-02-04"),    # deleted author
        ("p2", "post", None, "p2", None, "2018-03-01"),       # deleted poster
        ("c5", "comment", "p2", "p2", None, "2018-03-02"),    # another deleted author: not a self-response
        ("p3", "post", None, "p3", "cat", "2018-04-01"),      # no answer
        ("p4", "post", None, "p4", "dan", "2018-05-01"),
        ("c6", "comment", "p4", "p4", "dan", "2018-05-02"),   # only self-answers
    ]
    metrics = participation_metrics(_records(rows), "semester")
    row = metrics.iloc[0]
    assert len(metrics) == 1 and row["window_label"] == "2018H1"
    assert (row["contributions"], row["posts"], row["comments"]) == (10, 4, 6)
    assert row["unknown_author_contributions"] == 3
    # ann, bob, cat, dan: a join of posts x comments would count ann and bob several times
    assert (row["contributors"], row["posters"], row["responders"]) == (4, 3, 3)
    assert row["one_time_contributors"] == 1  # cat
    assert row["response_rate"] == pytest.approx(2 / 4)  # p1 (bob) and p2 (an unknown author)
    assert row["responses_per_thread"] == pytest.approx((3 + 1 + 0 + 0) / 4)
    assert row["self_response_share"] == pytest.approx(2 / 6)  # c3 and c6
    # reply ties between known people: bob->ann, bob->bob (dropped), ann->bob
    assert (row["reply_nodes"], row["reply_ties"]) == (2, 2)
    assert row["reciprocity"] == pytest.approx(1.0)
    assert row["mean_degree"] == pytest.approx(2.0)


def test_new_returning_and_quiet_windows() -> None:
    rows = [
        ("p1", "post", None, "p1", "ann", "2017-02-01"),
        ("p2", "post", None, "p2", "ann", "2018-02-01"),
        ("c1", "comment", "p2", "p2", "bob", "2018-02-02"),
    ]
    metrics = participation_metrics(_records(rows), "semester").set_index("window_label")
    assert list(metrics.index) == ["2017H1", "2017H2", "2018H1"]
    assert metrics.loc["2017H2", "contributions"] == 0 and np.isnan(metrics.loc["2017H2", "response_rate"])
    assert metrics.loc["2017H1", "new_contributors"] == 1
    assert (metrics.loc["2018H1", "new_contributors"], metrics.loc["2018H1", "returning_contributors"]) == (1, 1)
    assert list(participation_metrics(_records([]).iloc[:0], "semester").columns) == COLUMNS


def test_thread_metrics_are_unknown_where_no_comment_was_collected() -> None:
    posts_only = _records([("p1", "post", None, "p1", "ann", "2018-02-01")]).assign(community="other")
    rows = pd.concat([posts_only, _records([("p2", "post", None, "p2", "bob", "2018-02-01"),
                                            ("c1", "comment", "p2", "p2", "cat", "2018-02-02"),
                                            ("p3", "post", None, "p3", "bob", "2018-08-01")])])
    metrics = participation_metrics(rows, "semester").set_index(["community", "window_label"])
    assert np.isnan(metrics.loc[("other", "2018H1"), "response_rate"])
    assert np.isnan(metrics.loc[("other", "2018H1"), "responses_per_thread"])
    assert metrics.loc[("teaching", "2018H1"), "response_rate"] == 1.0
    assert metrics.loc[("teaching", "2018H2"), "response_rate"] == 0.0  # comments are collected: a real zero


# -- the real corpus against an independent computation --------------------------------------------
def _read_dump(path: Path) -> pd.DataFrame:
    reader = zstandard.ZstdDecompressor().stream_reader(path.open("rb"))
    return pd.DataFrame([json.loads(line) for line in io.TextIOWrapper(reader, encoding="utf-8") if line.strip()])


def _semester(epoch: pd.Series) -> pd.Series:
    moment = pd.to_datetime(epoch.astype("int64"), unit="s", utc=True)
    return moment.dt.year.astype(str) + np.where(moment.dt.month <= 6, "H1", "H2")


def independent_metrics() -> pd.DataFrame:
    """Every metric from the raw dump with plain pandas (no edumine code), per semester."""
    posts = _read_dump(DUMPS / "teachingresources_submissions.zst").drop_duplicates("id")
    comments = _read_dump(DUMPS / "teachingresources_comments.zst").drop_duplicates("id")
    for frame in (posts, comments):
        frame["who"] = frame["author"].where(~frame["author"].fillna("").isin(DELETED))
        frame["w"] = _semester(frame["created_utc"])
    everything = pd.concat([posts.assign(kind="post"), comments.assign(kind="comment")])
    known = everything[everything["who"].notna()]
    result = pd.DataFrame(index=sorted(everything["w"].unique()))
    result["contributions"] = everything.groupby("w").size()
    result["posts"] = posts.groupby("w").size()
    result["comments"] = comments.groupby("w").size()
    result["unknown_author_contributions"] = everything[everything["who"].isna()].groupby("w").size()
    result["contributors"] = known.groupby("w")["who"].nunique()
    result["posters"] = known[known["kind"] == "post"].groupby("w")["who"].nunique()
    result["responders"] = known[known["kind"] == "comment"].groupby("w")["who"].nunique()
    first_window = known.groupby("who")["w"].min()
    result["new_contributors"] = first_window.value_counts()
    result["returning_contributors"] = result["contributors"] - result["new_contributors"]
    counts = known.groupby(["w", "who"]).size()
    result["one_time_contributors"] = counts[counts == 1].groupby(level="w").size()

    comments["thread"] = comments["link_id"].str.removeprefix("t3_")
    threaded = comments.merge(posts[["id", "who", "w"]], left_on="thread", right_on="id", suffixes=("", "_post"))
    threaded["self"] = threaded["who"].notna() & (threaded["who"] == threaded["who_post"])
    result["comments_without_post"] = comments[~comments["thread"].isin(posts["id"])].groupby("w").size()
    others = threaded[~threaded["self"]].groupby("thread").size()
    per_post = posts.assign(others=posts["id"].map(others).fillna(0))
    result["response_rate"] = per_post.groupby("w")["others"].apply(lambda s: (s > 0).mean())
    result["responses_per_thread"] = per_post.groupby("w")["others"].mean()
    result["self_response_share"] = threaded.groupby("w_post")["self"].mean()

    comments["parent"] = comments["parent_id"].str.split("_", n=1).str[1]
    authors = pd.concat([posts[["id", "who"]], comments[["id", "who"]]]).dropna()
    ties = comments.merge(authors.rename(columns={"id": "parent", "who": "to"}), on="parent")
    ties = ties[ties["who"].notna() & (ties["who"] != ties["to"])][["w", "who", "to"]].drop_duplicates()
    for window, edges in ties.groupby("w"):
        nodes = pd.unique(pd.concat([edges["who"], edges["to"]]))
        result.loc[window, "reply_nodes"] = len(nodes)
        result.loc[window, "reply_ties"] = len(edges)
        result.loc[window, "mean_degree"] = 2 * len(edges) / len(nodes)
        back = edges.merge(edges, left_on=["who", "to"], right_on=["to", "who"])
        result.loc[window, "reciprocity"] = len(back) / len(edges)
        pairs = pd.DataFrame({"a": np.minimum(edges["who"], edges["to"]),
                              "b": np.maximum(edges["who"], edges["to"])}).drop_duplicates()
        degree = pd.concat([pairs["a"], pairs["b"]]).value_counts()
        wedges = pairs.merge(pairs, on="a")
        wedges = wedges[wedges["b_x"] < wedges["b_y"]]
        closed = wedges.merge(pairs, left_on=["b_x", "b_y"], right_on=["a", "b"])
        triples = (degree * (degree - 1) / 2).sum()
        result.loc[window, "transitivity"] = 3 * len(closed) / triples if triples else 0.0
    return result.fillna({c: 0 for c in result.columns if c not in ("response_rate", "responses_per_thread",
                                                                     "self_response_share")})


@pytest.fixture(scope="module")
def teachingresources_metrics(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from edumine.pipelines.runner import run_collect

    lake = tmp_path_factory.mktemp("participation") / "lake"
    sources = [{"kind": "reddit.dumps.v1", "name": "teachingresources",
                "paths": [str(DUMPS / "teachingresources_*.zst")]}]
    ctx = run_collect(make_config(lake, sources))
    return participation_metrics(records_frame(ctx.lake.read("posts", columns=RECORD_COLUMNS)), "semester")


def test_metrics_match_an_independent_pandas_computation(teachingresources_metrics: pd.DataFrame) -> None:
    ours = teachingresources_metrics.set_index("window_label")
    expected = independent_metrics()
    assert list(ours.index) == ["2017H2", "2018H1"] == list(expected.index)
    assert set(ours["community"]) == {"teachingresources"}
    for column in expected.columns:
        for window in expected.index:
            mine, theirs = ours.loc[window, column], expected.loc[window, column]
            assert mine == pytest.approx(theirs, rel=1e-12, abs=1e-12), f"{column} in {window}: {mine} != {theirs}"
    checked = set(expected.columns)
    assert checked == set(COLUMNS) - {"window_start", "window_label", "platform", "community"}
    # the numbers of the note (r/teachingresources 2017-18), as a guard against silent changes
    assert ours.loc["2017H2", ["posts", "comments", "contributors"]].tolist() == [387, 528, 379]
    assert ours.loc["2018H1", ["posts", "comments", "contributors"]].tolist() == [533, 508, 446]
