"""What the topic stage reads from the lake's ``docs`` and ``posts`` tables, through the table handles the runner
gives a stage (``handle.read(columns=..., filter=...)``: the lake does the reading)."""

from __future__ import annotations

from typing import Any


def read_usable_docs(docs: Any, kinds: list[str]) -> Any:
    """Usable docs of the given kinds with their community, sorted by uid (a stable order for the fit).
    The clean text is left out: it is half the table at a million docs, and ``read_texts`` fetches the few
    texts the stage shows. ``docs``: the runner's handle of the docs table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = docs.read(columns=["uid", "kind", "created_at", "lemmas", "text_hash", "community"],
                      filter=(pc.field("usable") == True) & pc.field("kind").isin(kinds))  # noqa: E712
    if table is None:
        return None
    table = table.take(pc.sort_indices(table, sort_keys=[("uid", "ascending")]))
    pa.default_memory_pool().release_unused()  # the unsorted copy's memory goes back to the system
    return table


def read_texts(docs: Any, uids: list[str]) -> dict[str, str]:
    """Clean text of the given docs, by uid."""
    import pyarrow.compute as pc

    table = docs.read(columns=["uid", "text"], filter=pc.field("uid").isin(sorted(set(uids))))
    return dict(zip(table["uid"].to_pylist(), table["text"].to_pylist()))


def read_texts_in_order(docs: Any, uids: list[str]) -> list[str]:
    """Clean texts for backends that embed text rather than lemmas, in the order of ``uids``."""
    texts = read_texts(docs, uids)
    return [texts[uid] for uid in uids]


def read_doc_signals(posts: Any, uids: list[str]) -> dict[str, Any]:
    """Per doc of ``uids``: the link-post signals ``TopicModel.fit`` takes (edumine.models.topics.link_dumps)."""
    import pyarrow.compute as pc

    from edumine.models.topics.link_dumps import COLUMNS, doc_signals

    link_posts = posts.read(columns=list(COLUMNS), filter=pc.field("link_url").is_valid())
    return doc_signals(link_posts, uids)
