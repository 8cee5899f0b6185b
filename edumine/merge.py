"""Merging versions of records: one row per uid, the newest truth wins (edumine/lake.py writes the files).

``merge_versions`` merges one partition's stored rows with incoming ones; ``plan_moves`` finds the uids whose
versions sit in more than one partition (a later retrieval says another month or community) and the partition
each belongs in; ``stored_elsewhere`` reads their stored rows from the partitions they leave.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from edumine.schema import FILE_SCHEMA

PartitionKey = tuple[str, str, str]  # platform, community, month


@dataclass
class MergeCounts:
    added: int = 0
    updated: int = 0
    duplicates: int = 0
    partitions_rewritten: int = 0

    def __iadd__(self, other: MergeCounts) -> MergeCounts:
        self.added += other.added
        self.updated += other.updated
        self.duplicates += other.duplicates
        self.partitions_rewritten += other.partitions_rewritten
        return self


def version_rank(table: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(real, retrieved) per row, both sorted descending to find the newest truth: a version with a real
    retrieval time beats one whose time is only an estimate (``retrieval_estimated``), then the newest
    retrieval wins; a version without a retrieval time counts as the oldest."""
    real = pc.invert(pc.fill_null(table["retrieval_estimated"], False)).cast(pa.int8())
    retrieved = pc.fill_null(table["retrieved_at"].cast(pa.int64()), np.iinfo(np.int64).min)
    return real, retrieved


def merge_versions(existing: pa.Table | None, incoming: pa.Table) -> tuple[pa.Table, MergeCounts]:
    """One row per uid: the newest truth wins (``version_rank``), ties keep the stored row, deletion is sticky.
    The rows come out by (created_at, uid). Only key columns are sorted and taken; the whole table is taken once."""
    n_old = 0 if existing is None else existing.num_rows
    combined = incoming if existing is None else pa.concat_tables([existing, incoming])
    combined = combined.combine_chunks()  # a take over many chunks costs several times more
    real, retrieved = version_rank(combined)
    keys = pa.table({"uid": combined["uid"], "real": real, "retrieved": retrieved,
                     "order": pa.array(np.arange(combined.num_rows))})
    order = pc.sort_indices(keys, sort_keys=[("uid", "ascending"), ("real", "descending"),
                                             ("retrieved", "descending"), ("order", "ascending")])
    uids = combined["uid"].take(order)
    first = np.ones(len(uids), dtype=bool)
    if len(uids) > 1:
        first[1:] = pc.not_equal(uids.slice(1), uids.slice(0, len(uids) - 1)).to_numpy(zero_copy_only=False)
    first = pa.array(first)
    winners = pc.filter(order, first)  # row numbers in ``combined``, by uid
    by_time = pc.sort_indices(pa.table({"created_at": combined["created_at"].take(winners),
                                        "uid": pc.filter(uids, first)}),
                              sort_keys=[("created_at", "ascending"), ("uid", "ascending")])
    rows = winners.take(by_time)
    merged = combined.take(rows)

    deleted = pc.unique(pc.filter(combined["uid"], pc.fill_null(combined["is_deleted"], False)))
    revive = pc.and_(pc.is_in(merged["uid"], value_set=deleted), pc.invert(pc.fill_null(merged["is_deleted"], False)))
    sticky = pc.sum(revive).as_py() or 0
    if sticky:
        merged = _clear_text(merged, revive)

    from_incoming = rows.to_numpy() >= n_old
    if existing is None:
        was_stored = np.zeros(len(rows), dtype=bool)
    else:
        was_stored = pc.is_in(merged["uid"], value_set=existing["uid"]).to_numpy(zero_copy_only=False)
    counts = MergeCounts(added=int(np.sum(from_incoming & ~was_stored)),
                         updated=int(np.sum(from_incoming & was_stored)))
    counts.duplicates = incoming.num_rows - counts.added - counts.updated
    changed = counts.added + counts.updated + sticky > 0
    counts.partitions_rewritten = int(changed)
    return merged, counts


def _clear_text(table: pa.Table, mask: pa.ChunkedArray) -> pa.Table:
    for name in ("title", "body", "link_url"):
        col = table[name]
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pc.if_else(mask, pa.scalar(None, col.type), col))
    for name, value in (("is_deleted", True), ("removal", "deleted_later")):
        col = table[name]
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pc.if_else(mask, pa.scalar(value, col.type), col))
    return table


def plan_moves(lake: Any, incoming: Callable[..., pa.Table],
               keys: list[PartitionKey]) -> dict[str, PartitionKey]:
    """uid -> the partition of its winning version, for the uids whose versions sit in more than one."""
    columns = ["uid", "retrieved_at", "retrieval_estimated"]
    frames = []
    for number, key in enumerate(keys):
        table = incoming(key, columns)
        frames.append(table.append_column("_key", pa.array([number] * table.num_rows, pa.int32()))
                      .append_column("_stored", pa.array(np.zeros(table.num_rows, dtype=np.int8))))
    fresh = pa.concat_tables(frames) if frames else None
    if fresh is None or not fresh.num_rows:
        return {}
    all_keys = list(keys)
    dataset = lake.posts_dataset()
    if dataset is None and pc.count_distinct(fresh["uid"]).as_py() == fresh.num_rows:
        return {}  # a first collection whose uids are all distinct: nothing sits in two partitions
    if dataset is not None:
        stored = dataset.to_table(columns=columns + ["platform", "community", "month"],
                                  filter=ds.field("uid").isin(pc.unique(fresh["uid"])))
        numbers = []
        for key in zip(*(stored[c].to_pylist() for c in ("platform", "community", "month"))):
            if key not in all_keys:
                all_keys.append(key)
            numbers.append(all_keys.index(key))
        stored = stored.select(columns).append_column("_key", pa.array(numbers, pa.int32())) \
            .append_column("_stored", pa.array(np.ones(stored.num_rows, dtype=np.int8)))
        versions = pa.concat_tables([stored, fresh])
    else:
        versions = fresh
    places = pa.table({"uid": versions["uid"], "_key": versions["_key"]}).group_by("uid") \
        .aggregate([("_key", "count_distinct")])
    spread = pc.filter(places["uid"], pc.greater(places["_key_count_distinct"], 1))
    if not len(spread):
        return {}
    versions = versions.filter(pc.is_in(versions["uid"], value_set=spread))
    real, retrieved = version_rank(versions)
    ranked = pa.table({"uid": versions["uid"], "real": real, "retrieved": retrieved,
                       "stored": versions["_stored"], "key": versions["_key"],
                       "order": pa.array(np.arange(versions.num_rows))})
    # Stored copies first on ties (a tie keeps the stored row); between stored copies of one version
    # (a kill between writing the new partition and rewriting the old one), the newest incoming key.
    order = pc.sort_indices(ranked, sort_keys=[("uid", "ascending"), ("real", "descending"),
                                               ("retrieved", "descending"), ("stored", "descending"),
                                               ("order", "descending")])
    winners: dict[str, PartitionKey] = {}
    for uid, key in zip(ranked["uid"].take(order).to_pylist(), ranked["key"].take(order).to_pylist()):
        winners.setdefault(uid, all_keys[key])
    return winners

def stored_elsewhere(lake: Any, moves: dict[str, PartitionKey]) -> dict[PartitionKey, pa.Table]:
    """Stored rows of moving uids, by the partition that holds them (marked with a ``_stored`` column)."""
    found: dict[PartitionKey, pa.Table] = {}
    dataset = lake.posts_dataset()
    if dataset is None:
        return found
    table = dataset.to_table(filter=ds.field("uid").isin(sorted(moves)))
    for key in set(zip(*(table[c].to_pylist() for c in ("platform", "community", "month")))):
        mask = pc.and_(pc.and_(pc.equal(table["platform"], key[0]), pc.equal(table["community"], key[1])),
                       pc.equal(table["month"], key[2]))
        rows = table.filter(mask).select(FILE_SCHEMA.names).cast(FILE_SCHEMA)
        mine = [u for u in rows["uid"].to_pylist() if moves[u] != key]
        if mine:
            rows = rows.filter(pc.is_in(rows["uid"], value_set=pa.array(mine, pa.string())))
            found[key] = rows.append_column("_stored", pa.array(np.ones(rows.num_rows, dtype=np.int8)))
    return found
