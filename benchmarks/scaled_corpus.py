"""Real posts scaled to benchmark sizes (10 k, 100 k, 1 M) without inventing text.

Copy 0 is every real post once (in a seeded shuffled order); copy k >= 1 of a post drops each word with
probability 0.1 (seeded by copy and post), so copies are near-duplicates that keep the post's topic but
are not identical (identical copies would form artificial dense clusters). Dates and communities stay
as they were. Standard library only, so the same corpus can be rebuilt on another machine.
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
