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

import logging
from typing import Any

import numpy as np
import pandas as pd

from edumine.progress import Progress, phase
from edumine.windows import all_windows, window_label, window_starts

log = logging.getLogger(__name__)

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


def participation_metrics(records: pd.DataFrame, unit: str, *, spans: dict[tuple[str, str], tuple] | None = None,
                          with_comments: set[tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per platform x community x window (empty windows between a community's first and last
    included, with zero counts and null rates), columns as ``COLUMNS``.

    For a nightly run that computes some windows from a subset of the records (``incremental_activity``):
    ``spans`` gives each community's first and last window start over all records, ``with_comments`` the
    communities that have comments anywhere in the lake (else both come from ``records``)."""
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

    with phase("metrics: activity counts and threads", len(frame), logger=log):
        out = _counts(frame, known, is_post, is_comment, unit, spans)
    # A community without any comment in the lake had its comments not collected (a posts-only source):
    # its thread metrics are unknown, not zero.
    if with_comments is None:
        with_comments = set(map(tuple, frame.loc[is_comment, ["platform", "community"]].drop_duplicates().to_numpy()))
    collected = pd.MultiIndex.from_tuples(sorted(with_comments), names=["platform", "community"])
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


def _counts(frame: pd.DataFrame, known: pd.DataFrame, is_post: Any, is_comment: Any, unit: str,
            spans: dict[tuple[str, str], tuple] | None) -> pd.DataFrame:
    """The window grid with the activity counts and thread metrics joined."""
    out = _grid(frame, unit, spans)
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

    return out.join(_thread_metrics(frame))


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="int64") for c in COLUMNS})
    for column in ("window_label", "platform", "community"):
        frame[column] = frame[column].astype(object)
    frame["window_start"] = frame["window_start"].astype("datetime64[s]")
    for column in ("response_rate", "responses_per_thread", "self_response_share", "mean_degree", "reciprocity",
                   "transitivity"):
        frame[column] = frame[column].astype(float)
    return frame


def _grid(frame: pd.DataFrame, unit: str, spans: dict[tuple[str, str], tuple] | None = None) -> pd.DataFrame:
    """Every window from each community's first to its last, so that quiet windows show as zeros."""
    rows = []
    for (platform, community), starts in frame.groupby(["platform", "community"])["window_start"]:
        first, last = pd.Timestamp(starts.min()).date(), pd.Timestamp(starts.max()).date()
        if spans is not None and (platform, community) in spans:
            first, last = (pd.Timestamp(value).date() for value in spans[(platform, community)])
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
    groups = ties.groupby(KEYS)
    with Progress("metrics: reply networks per window and community", total=groups.ngroups, unit="groups",
                  logger=log) as progress:
        for key, group in groups:
            graph = nx.DiGraph()
            graph.add_edges_from(zip(group["author"], group["parent_author"]))
            nodes, edges = graph.number_of_nodes(), graph.number_of_edges()
            rows[key] = {"reply_nodes": nodes, "reply_ties": edges,
                         "mean_degree": sum(d for _, d in graph.degree()) / nodes,
                         "reciprocity": float(nx.reciprocity(graph)),
                         "transitivity": float(nx.transitivity(graph.to_undirected()))}
            progress.advance(1)
    columns = ["reply_nodes", "reply_ties", "mean_degree", "reciprocity", "transitivity"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=KEYS))
    result = pd.DataFrame.from_dict(rows, orient="index")
    result.index = pd.MultiIndex.from_tuples(result.index, names=KEYS)
    return result[columns]


# -- nightly runs: only the windows new or updated records change ------------------------------------------

def _windows(frame: pd.DataFrame, unit: str) -> np.ndarray:
    created = pd.to_datetime(frame["created_at"], utc=True).dt.tz_localize(None)
    return window_starts(created.to_numpy(dtype="datetime64[us]"), unit).astype("datetime64[D]")


def affected_windows(records: pd.DataFrame, changed: np.ndarray, unit: str) -> set[tuple[str, str, np.datetime64]]:
    """(platform, community, window_start) whose metrics ``changed`` records (a mask over ``records``) can move:
    their own windows; the windows of the threads they comment on and of the comments on them (thread
    metrics go by the post's window); the windows of replies to them (the reply network goes by the reply's
    window and needs the parent's author); and their authors' first windows in the community, before and
    after (new against returning contributors)."""
    changed = np.asarray(changed, dtype=bool)  # ``records`` without duplicate uids, as the metrics see them
    frame = records.assign(window_start=_windows(records, unit))
    key = ["platform", "community", "window_start"]
    touched = frame[changed]
    parts = [touched[key]]
    ids = set(touched["uid"])
    posts = frame[frame["kind"] == "post"].set_index("uid")
    threads = touched.loc[touched["kind"] == "comment", "thread_uid"].dropna()
    parts.append(posts.loc[posts.index.intersection(threads), key[:2] + ["window_start"]].reset_index(drop=True))
    related = frame["thread_uid"].isin(ids) | frame["parent_uid"].isin(ids)
    parts.append(frame.loc[related, key])
    authors = touched.loc[touched["author"].notna(), ["platform", "community", "author"]].drop_duplicates()
    if len(authors):
        own = frame.merge(authors, on=["platform", "community", "author"])
        parts.append(own.groupby(["platform", "community", "author"])["window_start"].min().reset_index()[key])
        before = own[~own["uid"].isin(ids)]
        parts.append(before.groupby(["platform", "community", "author"])["window_start"].min().reset_index()[key])
    found = pd.concat(parts, ignore_index=True).drop_duplicates()
    return {(p, c, np.datetime64(w, "D")) for p, c, w in found.itertuples(index=False)}


def records_for_windows(records: pd.DataFrame, windows: set[tuple[str, str, np.datetime64]],
                        unit: str) -> pd.DataFrame:
    """The records the metrics of ``windows`` need: the windows' own records, every comment on a thread
    posted in them, the thread posts and parents of their comments, and the earliest record in the community
    of each of their authors."""
    frame = records.drop_duplicates("uid").reset_index(drop=True)
    starts = _windows(frame, unit)
    keys = pd.MultiIndex.from_arrays([frame["platform"], frame["community"], starts])
    inside = keys.isin(pd.MultiIndex.from_tuples(sorted(windows))) if windows else np.zeros(len(frame), bool)
    own = frame[inside]
    need = inside.copy()
    posts_inside = set(own.loc[own["kind"] == "post", "uid"])
    need |= frame["thread_uid"].isin(posts_inside).to_numpy()
    need |= frame["uid"].isin(set(own["thread_uid"].dropna()) | set(own["parent_uid"].dropna())).to_numpy()
    authors = own.loc[own["author"].notna(), ["platform", "community", "author"]].drop_duplicates()
    if len(authors):
        known = frame.assign(_start=starts, _row=np.arange(len(frame))).merge(
            authors, on=["platform", "community", "author"])
        first = known.sort_values(["_start", "_row"]).drop_duplicates(["platform", "community", "author"])
        need[first["_row"].to_numpy()] = True
    return frame[need].reset_index(drop=True)


def incremental_activity(records: pd.DataFrame, seen_runs: set[str] | None, old: pd.DataFrame | None,
                         unit: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """``community_activity`` with only the windows moved by records that ``seen_runs`` (the ``ingest_run``
    values the last table was computed from) do not cover recomputed, the others' rows kept from ``old`` (the
    last run's table): the same rows ``participation_metrics(records)`` gives. Everything is recomputed when
    there is no old table, and a community's every window when it got its first comments (its thread
    metrics were unknown, now they are zero where no one answered)."""
    records = records.drop_duplicates("uid").reset_index(drop=True)
    if seen_runs is None:
        old = None
    changed = ~records["ingest_run"].fillna("").isin(seen_runs or set()).to_numpy()
    if old is None or old.empty:
        full = participation_metrics(records, unit)
        return full, {"windows_recomputed": len(full), "windows_kept": 0}
    changed = np.asarray(changed, dtype=bool)
    is_comment = records["kind"] == "comment"
    with_comments = set(map(tuple, records.loc[is_comment, ["platform", "community"]].drop_duplicates().to_numpy()))
    had_comments = set(map(tuple, records.loc[is_comment & ~changed, ["platform", "community"]]
                           .drop_duplicates().to_numpy()))
    starts = _windows(records, unit)
    frame = records.assign(window_start=starts)
    spans = {key: (group.min(), group.max()) for key, group in frame.groupby(["platform", "community"])["window_start"]}
    windows = affected_windows(records, changed, unit)
    old_keys = set(zip(old["platform"].astype(str), old["community"].astype(str),
                       pd.to_datetime(old["window_start"]).to_numpy().astype("datetime64[D]")))
    for (platform, community), (first, last) in spans.items():
        grid = [np.datetime64(w, "D") for w in all_windows(pd.Timestamp(first).date(), pd.Timestamp(last).date(), unit)]
        fresh = (platform, community) in with_comments and (platform, community) not in had_comments
        windows |= {(platform, community, w) for w in grid if fresh or (platform, community, w) not in old_keys}
    if not windows:  # nothing new moves any window: the last table stands
        return participation_metrics(records.iloc[:0], unit) if old.empty else \
            old.assign(window_start=pd.to_datetime(old["window_start"]).astype("datetime64[us]"))[COLUMNS], \
            {"windows_recomputed": 0, "windows_kept": len(old)}
    subset = records_for_windows(records, windows, unit)
    computed = participation_metrics(subset, unit, spans=spans, with_comments=with_comments)
    computed_keys = list(zip(computed["platform"], computed["community"],
                             computed["window_start"].to_numpy().astype("datetime64[D]")))
    computed = computed[[key in windows for key in computed_keys]]
    old_rows = old[[key not in windows for key in zip(old["platform"].astype(str), old["community"].astype(str),
                                                    pd.to_datetime(old["window_start"]).to_numpy()
                                                    .astype("datetime64[D]"))]]
    old_rows = old_rows.assign(window_start=pd.to_datetime(old_rows["window_start"]).astype(computed["window_start"].dtype))
    merged = pd.concat([old_rows[COLUMNS], computed[COLUMNS]], ignore_index=True)
    merged = merged.sort_values(["window_start", "platform", "community"], ignore_index=True)
    return merged, {"windows_recomputed": len(computed), "windows_kept": len(old_rows)}
