"""Participation metrics per time window and community, from the posts and comments in the lake.

Staudt Willet & Carpenter (2021) told a "conversational space" from a "bulletin board space" with such
numbers. Every count of people counts distinct pseudonyms, never rows of a join (their code counted
users with "multiple posts" by rows of a post x comment join). A deleted or unknown author (``author``
null) is nobody in particular: such records count as contributions, but never as a person, and two
of them are never taken to be the same person (so a comment by an unknown author in a known or unknown
author's thread is a response by someone else, never a self-response).

Activity counts go by each record's own window; thread metrics (response rate, responses per thread,
self-response share) go by the window of the thread's post and count every comment the lake holds for
that thread, whenever it was written. Definitions, one line each: ``docs/metrics.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from edumine.windows import all_windows, window_label, window_starts

KEYS = ["platform", "community", "window_start"]
RECORD_COLUMNS = ["uid", "kind", "parent_uid", "thread_uid", "author", "created_at", "platform", "community"]

# Column order of ``community_activity`` (see docs/store.md for types and meanings).
COLUMNS = [
    "window_start", "window_label", "platform", "community",
    "contributions", "posts", "comments", "unknown_author_contributions",
    "contributors", "posters", "responders", "new_contributors", "returning_contributors",
    "one_time_contributors",
    "response_rate", "responses_per_thread", "self_response_share", "comments_without_post",
    "reply_nodes", "reply_ties", "mean_degree", "reciprocity", "transitivity",
]
COUNT_COLUMNS = [c for c in COLUMNS[4:] if c not in
                 ("response_rate", "responses_per_thread", "self_response_share", "mean_degree", "reciprocity",
                  "transitivity")]


def records_frame(table: Any) -> pd.DataFrame:
    """Posts and comments (an Arrow table of the lake's ``posts`` with ``RECORD_COLUMNS``) as the frame the
    metrics need."""
    frame = table.to_pandas()
    for name in ("platform", "community"):
        frame[name] = frame[name].astype(str)
    return frame


def participation_metrics(records: pd.DataFrame, unit: str) -> pd.DataFrame:
    """One row per platform x community x window (empty windows between a community's first and last
    included, with zero counts and null rates), columns as ``COLUMNS``."""
    if records.empty:
        return _empty()
    frame = records.loc[:, RECORD_COLUMNS].copy()
    frame = frame.drop_duplicates("uid")
    created = pd.to_datetime(frame["created_at"], utc=True).dt.tz_localize(None)
    frame["window_start"] = window_starts(created.to_numpy(dtype="datetime64[us]"), unit)
    frame = frame[frame["window_start"].notna()]
    frame["author"] = frame["author"].where(frame["author"].notna(), None)
    known = frame[frame["author"].notna()]
    is_post = frame["kind"] == "post"
    is_comment = frame["kind"] == "comment"

    out = _grid(frame, unit)
    out = out.join(frame.groupby(KEYS).size().rename("contributions"))
    out = out.join(frame[is_post].groupby(KEYS).size().rename("posts"))
    out = out.join(frame[is_comment].groupby(KEYS).size().rename("comments"))
    out = out.join(frame[frame["author"].isna()].groupby(KEYS).size().rename("unknown_author_contributions"))
    out = out.join(known.groupby(KEYS)["author"].nunique().rename("contributors"))
    out = out.join(known[known["kind"] == "post"].groupby(KEYS)["author"].nunique().rename("posters"))
    out = out.join(known[known["kind"] == "comment"].groupby(KEYS)["author"].nunique().rename("responders"))

    first = known.groupby(["platform", "community", "author"])["window_start"].transform("min")
    new = known[known["window_start"] == first]
    out = out.join(new.groupby(KEYS)["author"].nunique().rename("new_contributors"))
    per_person = known.groupby(KEYS + ["author"]).size()
    out = out.join((per_person == 1).groupby(level=KEYS).sum().rename("one_time_contributors"))

    out = out.join(_thread_metrics(frame))
    # A community without any comment in the lake had its comments not collected (a posts-only source):
    # its thread metrics are unknown, not zero.
    with_comments = frame.loc[is_comment, ["platform", "community"]].drop_duplicates()
    collected = pd.MultiIndex.from_frame(with_comments)
    silent = ~out.index.droplevel("window_start").isin(collected)
    out.loc[silent, ["response_rate", "responses_per_thread", "self_response_share"]] = np.nan
    out = out.join(_reply_network(frame))
    for column in COUNT_COLUMNS:
        if column != "returning_contributors":
            out[column] = out[column].fillna(0).astype("int64")
    out["returning_contributors"] = out["contributors"] - out["new_contributors"]
    out = out.reset_index()
    out["window_label"] = [window_label(start, unit) for start in out["window_start"]]
    return out.loc[:, COLUMNS].sort_values(["window_start", "platform", "community"], ignore_index=True)


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="int64") for c in COLUMNS})
    for column in ("window_label", "platform", "community"):
        frame[column] = frame[column].astype(object)
    frame["window_start"] = frame["window_start"].astype("datetime64[s]")
    for column in ("response_rate", "responses_per_thread", "self_response_share", "mean_degree", "reciprocity",
                   "transitivity"):
        frame[column] = frame[column].astype(float)
    return frame


def _grid(frame: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Every window from each community's first to its last, so that quiet windows show as zeros."""
    rows = []
    for (platform, community), starts in frame.groupby(["platform", "community"])["window_start"]:
        first, last = pd.Timestamp(starts.min()).date(), pd.Timestamp(starts.max()).date()
        rows += [(platform, community, np.datetime64(start, "D")) for start in all_windows(first, last, unit)]
    grid = pd.DataFrame(rows, columns=KEYS)
    grid["window_start"] = grid["window_start"].astype(frame["window_start"].dtype)
    return grid.set_index(KEYS)


def _thread_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    posts = frame.loc[frame["kind"] == "post", KEYS + ["uid", "author"]]
    comments = frame.loc[frame["kind"] == "comment", KEYS + ["thread_uid", "author"]]
    joined = comments.merge(posts[["uid", "author"] + KEYS], left_on="thread_uid", right_on="uid", how="left",
                            suffixes=("", "_post"))
    orphan = joined["uid"].isna()
    without_post = joined[orphan].groupby(KEYS).size().rename("comments_without_post")

    joined = joined[~orphan]
    is_self = joined["author"].notna() & joined["author_post"].notna() & (joined["author"] == joined["author_post"])
    per_thread = pd.DataFrame({"uid": joined["uid"], "self": is_self.astype("int64"),
                               "other": (~is_self).astype("int64")}).groupby("uid").sum()
    threads = posts.set_index("uid").join(per_thread).fillna({"self": 0, "other": 0})
    grouped = threads.groupby(KEYS)
    result = pd.DataFrame({
        "response_rate": grouped["other"].apply(lambda s: float((s > 0).mean())),
        "responses_per_thread": grouped["other"].mean().astype(float),
    })
    replies = grouped["self"].sum() + grouped["other"].sum()
    result["self_response_share"] = (grouped["self"].sum() / replies.where(replies > 0)).astype(float)
    return result.join(without_post, how="outer")


def _reply_network(frame: pd.DataFrame) -> pd.DataFrame:
    """Directed reply ties between known people (who answered whom), per window of the reply."""
    import networkx as nx

    comments = frame.loc[(frame["kind"] == "comment") & frame["author"].notna() & frame["parent_uid"].notna(),
                         KEYS + ["parent_uid", "author"]]
    parents = frame.loc[frame["author"].notna(), ["uid", "author"]].rename(columns={"author": "parent_author"})
    ties = comments.merge(parents, left_on="parent_uid", right_on="uid")
    ties = ties[ties["author"] != ties["parent_author"]].drop_duplicates(KEYS + ["author", "parent_author"])
    rows = {}
    for key, group in ties.groupby(KEYS):
        graph = nx.DiGraph()
        graph.add_edges_from(zip(group["author"], group["parent_author"]))
        nodes, edges = graph.number_of_nodes(), graph.number_of_edges()
        rows[key] = {"reply_nodes": nodes, "reply_ties": edges,
                     "mean_degree": sum(d for _, d in graph.degree()) / nodes,
                     "reciprocity": float(nx.reciprocity(graph)),
                     "transitivity": float(nx.transitivity(graph.to_undirected()))}
    columns = ["reply_nodes", "reply_ties", "mean_degree", "reciprocity", "transitivity"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=KEYS))
    result = pd.DataFrame.from_dict(rows, orient="index")
    result.index = pd.MultiIndex.from_tuples(result.index, names=KEYS)
    return result[columns]
