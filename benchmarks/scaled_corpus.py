"""Real posts scaled to benchmark sizes (10 k, 100 k, 1 M) without inventing text.

Copy 0 is every real post once (in a seeded shuffled order); copy k >= 1 of a post drops each word with
probability 0.1 (seeded by copy and post), so copies are near-duplicates that keep the post's topic but
are not identical (identical copies would form artificial dense clusters). Dates and communities stay
as they were. Standard library only, so the same corpus can be rebuilt on another machine.

``scaled_records`` shuffles records (the topics benchmarks); ``scaled_forest`` keeps the real reply structure
(threads, parents, authors) in every copy, for the whole-pipeline benchmark (benchmarks/pipeline_scale.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any


def _perturb(text: str | None, rng: random.Random, drop: float) -> str | None:
    if not text:
        return text
    words = text.split(" ")
    kept = [w for w in words if rng.random() >= drop]
    return " ".join(kept or words[:1])


def scaled_records(base: list[dict[str, Any]], n: int, *, seed: int = 0, drop: float = 0.1) -> Iterator[dict[str, Any]]:
    """``n`` records from ``base`` (dicts with uid, title, body, ...): the real ones first, then perturbed copies."""
    order = list(range(len(base)))
    random.Random(seed).shuffle(order)
    produced = 0
    copy = 0
    while produced < n:
        for index in order:
            if produced >= n:
                return
            record = dict(base[index])
            if copy:
                rng = random.Random(f"{seed}:{copy}:{index}")
                record["title"] = _perturb(record.get("title"), rng, drop)
                record["body"] = _perturb(record.get("body"), rng, drop)
                record["uid"] = f"{record['uid']}#copy{copy}"
            produced += 1
            yield record
        copy += 1


# Real reply structure at scale. Copy k of the corpus is a whole reply forest of its own: a record's id, its
# parent and its thread all get copy k's suffix, so a copy-k comment answers the copy-k parent, in the copy-k
# thread; authors get the same suffix, so copy k's people are other people than copy j's (who write alike).
# Copy 0 keeps the real ids and pseudonyms. A missing author or parent stays missing, as in the real corpora.


def copy_name(name: str | None, copy: int) -> str | None:
    """``name`` (an id, uid or author) as it is in copy ``copy``: unchanged in copy 0, suffixed after."""
    return name if name is None or copy == 0 else f"{name}-c{copy}"


def _threads(base: list[dict[str, Any]], seed: int) -> list[list[dict[str, Any]]]:
    """``base`` grouped by thread (the post, then its comments by time), the threads in a seeded shuffled order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in base:
        groups.setdefault(record.get("thread_uid") or record["uid"], []).append(record)
    threads = [sorted(group, key=lambda r: (r["kind"] != "post", r["created_at"], r["uid"]))
               for _, group in sorted(groups.items())]
    random.Random(seed).shuffle(threads)
    return threads


def scaled_forest(base: list[dict[str, Any]], n: int, *, seed: int = 0,
                  drop: float = 0.1) -> Iterator[dict[str, Any]]:
    """``n`` records from ``base`` (dicts with uid, id, kind, parent_uid, thread_uid, author, title, body, ...)
    keeping the real reply structure: copy 0 is the real records, thread by thread; copy k >= 1 is every
    thread again with perturbed text (as ``scaled_records``) and ids, parents, threads and authors of copy k.
    Threads stay together, so only the last thread of the last copy can be cut short by ``n``."""
    threads = _threads(base, seed)
    if not threads:
        return
    produced = 0
    copy = 0
    while True:
        for thread in threads:
            for real in thread:
                if produced >= n:
                    return
                record = dict(real)
                if copy:
                    rng = random.Random(f"{seed}:{copy}:{real['uid']}")
                    record["title"] = _perturb(record.get("title"), rng, drop)
                    record["body"] = _perturb(record.get("body"), rng, drop)
                for name in ("uid", "id", "parent_uid", "thread_uid", "author"):
                    record[name] = copy_name(record.get(name), copy)
                record["copy"] = copy
                produced += 1
                yield record
        copy += 1
