"""Planted drift for checking topic lineage on real posts: build the corpus, name the truth, score events.

``planted_drift`` takes real usable docs (one row per post, with ``uid``, ``community``, ``created_at``) and
returns one window pair of a base community in which

- every post of ``emerging`` (another community) is re-dated, at seeded random times, into the second
  window and moved into the base community: a topic that did not exist before (``planted == "emerging"``);
- every post of ``fading`` is re-dated into the first window only: a topic that stops
  (``planted == "fading"``).

``remove_topic_after`` then removes one fitted topic's posts from the second window (the other kind of
fading topic: a conversation that stops, inside the community's own posts). ``planted_topics`` names the
topics made mostly of planted posts and ``event_precision_recall`` scores the lineage events against them.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd


def planted_drift(docs: pd.DataFrame, *, base: str = "teaching", emerging: str = "tefl",
                  fading: str = "highereducation", split_at: str = "2018-01-01", start: str = "2017-07-01",
                  end: str = "2018-07-01", seed: int = 0) -> pd.DataFrame:
    """The planted corpus: ``base`` posts in [start, end) plus re-dated ``emerging`` and ``fading`` posts."""
    when = {name: pd.Timestamp(value, tz="UTC") for name, value in
            (("start", start), ("split", split_at), ("end", end))}
    created = pd.to_datetime(docs["created_at"], utc=True)
    keep = (docs["community"] == base) & (created >= when["start"]) & (created < when["end"])
    parts = [docs[keep].assign(planted=None)]
    rng = np.random.default_rng(seed)
    for community, (low, high) in ((emerging, (when["split"], when["end"])),
                                   (fading, (when["start"], when["split"]))):
        moved = docs[docs["community"] == community].copy()
        if moved.empty:
            raise ValueError(f"no posts of community {community!r} to plant; communities present: "
                             f"{sorted(docs['community'].unique())}")
        seconds = rng.uniform(low.timestamp(), high.timestamp(), size=len(moved))
        moved["created_at"] = [datetime.fromtimestamp(s, tz=timezone.utc) for s in seconds]
        moved["community"] = base
        moved["planted"] = "emerging" if community == emerging else "fading"
        parts.append(moved)
    planted = pd.concat(parts, ignore_index=True)
    planted["created_at"] = pd.to_datetime(planted["created_at"], utc=True)
    return planted.sort_values("uid").reset_index(drop=True)


def remove_topic_after(docs: pd.DataFrame, topics: np.ndarray, split_at: str = "2018-01-01",
                       min_docs: int = 20, purity: float = 0.8) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Drop the second-window posts of the largest unplanted topic (its posts ``planted == "removed"`` in
    the first window). Returns the docs, their topics, and the topic id removed."""
    frame = docs.assign(topic_id=topics)
    unplanted = frame[frame["planted"].isna() & (frame["topic_id"] >= 0)]
    share_unplanted = unplanted.groupby("topic_id").size() / frame[frame["topic_id"] >= 0].groupby("topic_id").size()
    sizes = unplanted.groupby("topic_id").size()
    candidates = sizes[(share_unplanted.reindex(sizes.index) >= purity) & (sizes >= min_docs)]
    if candidates.empty:
        raise ValueError("no unplanted topic is big enough to remove from the second window")
    removed = int(candidates.sort_values(ascending=False, kind="stable").index[0])
    after = pd.to_datetime(frame["created_at"], utc=True) >= pd.Timestamp(split_at, tz="UTC")
    in_topic = frame["topic_id"] == removed
    keep = ~(in_topic & after)
    frame.loc[in_topic & ~after, "planted"] = "removed"
    kept = frame[keep].reset_index(drop=True)
    return kept.drop(columns=["topic_id"]), kept["topic_id"].to_numpy(), removed


def planted_topics(docs: pd.DataFrame, topics: np.ndarray, *, majority: float = 0.5) -> dict[str, set[int]]:
    """Topics made mostly of planted posts: at least ``majority`` of the topic's docs (both windows) are
    planted emerging (fading, removed) posts. Such a topic lives mostly in one window: the plant made it."""
    frame = pd.DataFrame({"topic_id": topics, "planted": docs["planted"].fillna("").to_numpy()})
    frame = frame[frame["topic_id"] >= 0]
    truth: dict[str, set[int]] = {}
    for kind in ("emerging", "fading", "removed"):
        shares = (frame["planted"] == kind).groupby(frame["topic_id"]).mean()
        truth[kind] = {int(t) for t in shares.index[shares >= majority]}
    return truth


def event_precision_recall(events: pd.DataFrame, truth: dict[str, set[int]], *, window: str,
                           community: str = "all") -> dict[str, float]:
    """Precision and recall of the emerged / faded events of one window against the planted topics, and
    the share of unplanted topics reported there that persisted (persisted, grew or declined)."""
    rows = events[(events["window_label"] == window) & (events["community"] == community)]
    expected = {(t, "emerged") for t in truth["emerging"]} | \
               {(t, "faded") for t in truth["fading"] | truth["removed"]}
    found = {(int(t), e) for t, e in zip(rows["topic_id"], rows["event"]) if e in ("emerged", "faded")}
    hits = len(found & expected)
    planted_ids = set().union(*truth.values())
    others = rows[~rows["topic_id"].isin(planted_ids)]
    continuing = others["event"].isin(["persisted", "grew", "declined"]).mean() if len(others) else float("nan")
    return {"precision": hits / len(found) if found else float("nan"),
            "recall": hits / len(expected) if expected else float("nan"),
            "planted": len(expected), "found": len(found), "hits": hits,
            "directional_recall": _directional(rows, truth),
            "unplanted_continuing_share": float(continuing)}


def _directional(rows: pd.DataFrame, truth: dict[str, set[int]]) -> float:
    """Share of planted topics whose event points the planted way (emerged or grew; faded or declined)."""
    event = dict(zip(rows["topic_id"].astype(int), rows["event"]))
    right = [event.get(t) in ("emerged", "grew") for t in truth["emerging"]] + \
            [event.get(t) in ("faded", "declined") for t in truth["fading"] | truth["removed"]]
    return sum(right) / len(right) if right else float("nan")
