"""``tabular.v1``: CSV, Parquet and JSONL exports of other tools, mapped onto lake records by a column map.

``columns`` maps lake fields to the export's column names, e.g. ``{id: id, created: created_utc, title:
title, body: selftext, community: subreddit}``. Exports without ids (praw scrapes concatenated from
several listings, the Reddit Mental Health Dataset) get a stable derived id: ``h`` + the first 16 hex
digits of SHA-1 over community, creation time, title and body. Identical rows thus get one uid, so
duplicated rows collapse in the lake and are counted as duplicates; the same post in a later export of
the same tool gets the same id. Rows are streamed in batches (bounded memory).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from edumine import registry
from edumine.config import StrictModel
from edumine.miners.base import (BadRecord, FileListing, FileSourceConfig, ReadStats, Rejected, optional_int,
                                 parse_time_text, record_builder, time_bounds)
from edumine.miners.reddit_dumps import iter_json_lines
from edumine.schema import from_epoch, make_uid

BATCH_ROWS = 10_000
log = logging.getLogger(__name__)


class ColumnMap(StrictModel):
    id: str | None = None
    created: str
    title: str | None = None
    body: str | None = None
    community: str | None = None
    author: str | None = None
    score: str | None = None
    url: str | None = None
    link_url: str | None = None
    num_comments: str | None = None
    parent_id: str | None = None
    thread_id: str | None = None
    retrieved: str | None = None


class TabularConfig(FileSourceConfig):
    kind: Literal["tabular.v1"] = "tabular.v1"
    platform: str = "reddit"
    kind_of_record: Literal["post", "comment"] = "post"
    columns: ColumnMap
    community: str | None = Field(None, description="community of every row, when no column holds it")
    format: Literal["auto", "csv", "parquet", "jsonl"] = "auto"
    created_format: str | None = Field(None, description="strptime format of the created column; default: "
                                                         "epoch seconds or ISO dates are recognised")
    delimiter: str = ","
    encoding: str = "utf-8"
    file_time_is_estimate: bool = Field(True, description="rows without a `retrieved` column take the file's "
                                        "modification time as their retrieval time; true: it is only an "
                                        "estimate, and such a row never replaces a version with a real retrieval "
                                        "time (a CSV copy of a dump row must not wipe its url and counts)")

    @model_validator(mode="after")
    def _community_known(self) -> TabularConfig:
        if not self.columns.community and not self.community:
            raise ValueError("give columns.community (a column naming each row's community) or community")
        if not (self.columns.title or self.columns.body):
            raise ValueError("map at least one of columns.title and columns.body to a text column")
        return self


@registry.sources.register("tabular.v1")
class TabularSource(FileListing):
    Config = TabularConfig

    def __init__(self, *, paths: list[str], columns: ColumnMap | dict, platform: str = "reddit",
                 kind_of_record: str = "post", community: str | None = None, format: str = "auto",
                 created_format: str | None = None, delimiter: str = ",", encoding: str = "utf-8",
                 since: Any = None, until: Any = None, file_time_is_estimate: bool = True) -> None:
        self.paths = paths
        self.columns = columns
        self.platform = platform
        self.kind_of_record = kind_of_record
        self.community = community
        self.format = format
        self.created_format = created_format
        self.delimiter = delimiter
        self.encoding = encoding
        self.since = since
        self.until = until
        self.file_time_is_estimate = file_time_is_estimate

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        columns = self.columns if isinstance(self.columns, ColumnMap) else ColumnMap(**self.columns)
        low, high = time_bounds(self.since, self.until)
        for path in self.files()[0]:
            counts = stats.file(path)
            retrieved = from_epoch(os.path.getmtime(path))
            checked = False
            for item in self._rows(path, stats):
                if isinstance(item, Rejected):
                    yield item
                    continue
                location, row = item
                counts["rows"] += 1
                if not checked:
                    wanted = list(columns.model_dump(exclude_none=True).values())
                    missing = [c for c in wanted if c not in row]
                    if missing:
                        hint = self._delimiter_hint(path, wanted)
                        if hint:
                            log.warning("source file %s: %s", path, hint)
                            yield Rejected(str(path), "wrong_delimiter", hint)
                        else:
                            yield Rejected(str(path), "missing_column", f"columns {missing} are not in the file "
                                           f"(it has {sorted(row)[:20]}); fix the source's `columns:`")
                        break
                    checked = True
                try:
                    record = self._record(row, columns, counts, retrieved)
                except BadRecord as exc:
                    yield Rejected(location, exc.reason, exc.detail, row,
                                   personal=(columns.author,) if columns.author else ())
                    continue
                if not low <= record["created_at"].timestamp() < high:
                    counts["filtered"] += 1
                    continue
                yield record

    def _delimiter_hint(self, path: Path, wanted: list[str]) -> str | None:
        """When the columns are missing because the file is split by another delimiter, say which (sniffed)."""
        if (self.format if self.format != "auto" else _format_of(path)) != "csv":
            return None
        try:
            with open(path, newline="", encoding=self.encoding, errors="replace") as handle:
                sample = handle.read(64 << 10)
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except (OSError, csv.Error):
            return None
        if dialect.delimiter == self.delimiter:
            return None
        header = next(csv.reader(sample.splitlines(), delimiter=dialect.delimiter), [])
        if not all(c in header for c in wanted):
            return None
        return (f"the columns are separated by {dialect.delimiter!r}, not {self.delimiter!r} (sniffed from the "
                f"file's start); set the source's `delimiter: {dialect.delimiter!r}`")

    def _rows(self, path: Path, stats: ReadStats) -> Iterator[tuple[str, dict] | Rejected]:
        fmt = self.format if self.format != "auto" else _format_of(path)
        if fmt == "jsonl":
            for item in iter_json_lines(path, stats):
                yield item if isinstance(item, Rejected) else (f"{path}:{item[0]}", item[2])
            return
        row_number = 0
        try:
            for batch in (_csv_batches(path, self.delimiter, self.encoding, stats) if fmt == "csv"
                          else _parquet_batches(path)):
                if isinstance(batch, Rejected):
                    yield batch
                    continue
                for row in batch.to_pylist():
                    row_number += 1
                    yield f"{path}:row {row_number}", row
        except Exception as exc:  # noqa: BLE001  (a damaged file must not stop the run)
            yield Rejected(str(path), "unreadable_file", f"stopped after row {row_number}: {type(exc).__name__}: "
                                                         f"{_without_row_text(str(exc))}")

    @record_builder
    def _record(self, row: dict, columns: ColumnMap, counts: Any, retrieved: Any) -> dict:
        def get(name: str | None) -> Any:
            value = row.get(name) if name else None
            return None if value is None or (isinstance(value, str) and value == "") else value

        community = get(columns.community) or self.community
        if not community:
            raise BadRecord("missing_community", f"column {columns.community!r} is empty")
        created_raw = get(columns.created)
        created = from_epoch(parse_time_text(created_raw, columns.created, self.created_format))
        title, body = get(columns.title), get(columns.body)
        title = None if title is None else str(title)
        body = None if body is None else str(body)
        record_id = get(columns.id)
        if record_id is None:
            digest = hashlib.sha1("\x1f".join([str(community).lower(), str(created_raw), title or "", body or ""])
                                  .encode("utf-8")).hexdigest()
            record_id = "h" + digest[:16]
        record_id = str(record_id)
        platform, kind = self.platform, self.kind_of_record
        uid = make_uid(platform, kind, record_id)
        thread_id, parent_id = get(columns.thread_id), get(columns.parent_id)
        if kind == "post":
            thread_uid, parent_uid = uid, None
        else:
            thread_uid = make_uid(platform, "post", _unprefix(thread_id)) if thread_id else None
            parent_uid = _parent_uid(platform, parent_id, thread_id)
        retrieved_value = get(columns.retrieved)
        estimated = retrieved_value is None and self.file_time_is_estimate
        return {
            "uid": uid, "platform": platform, "community": str(community), "kind": kind, "id": record_id,
            "parent_uid": parent_uid, "thread_uid": thread_uid, "author": get(columns.author),
            "created_at": created, "title": title, "body": body,
            "url": get(columns.url), "link_url": get(columns.link_url), "flair": None,
            "score": optional_int(get(columns.score), counts, "score"),
            "num_comments": optional_int(get(columns.num_comments), counts, "num_comments"),
            "removal": None, "is_edited": False, "edited_at": None,
            "retrieved_at": from_epoch(parse_time_text(retrieved_value, columns.retrieved or "retrieved"))
            if retrieved_value is not None else retrieved,
            "retrieval_estimated": estimated or None,
        }


def _unprefix(value: Any) -> str:
    text = str(value)
    return text[3:] if text[:3] in ("t1_", "t3_") else text


def _parent_uid(platform: str, parent_id: Any, thread_id: Any) -> str | None:
    if parent_id is None:
        return make_uid(platform, "post", _unprefix(thread_id)) if thread_id else None
    text = str(parent_id)
    is_post = text.startswith("t3_") or (thread_id is not None and _unprefix(text) == _unprefix(thread_id))
    return make_uid(platform, "post" if is_post else "comment", _unprefix(text))


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json", ".jsonl.zst", ".ndjson.zst", ".jsonl.gz")):
        return "jsonl"
    return "csv"


def _csv_batches(path: Path, delimiter: str, encoding: str, stats: ReadStats) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, newline="", encoding=encoding, errors="replace") as handle:
        header = next(csv.reader(handle, delimiter=delimiter), [])
    rejected: list[Rejected] = []

    def on_invalid(row: Any) -> str:
        # The fields cannot be aligned with the header, so any of them may be a username (see Rejected).
        fields = next(csv.reader([row.text or ""], delimiter=delimiter), [])
        rejected.append(Rejected(f"{path}:row {row.number}", "malformed_row",
                                 f"{row.actual_columns} fields where the header has {row.expected_columns}",
                                 {f"field_{i}": value for i, value in enumerate(fields[:50])}, personal=("*",)))
        return "skip"

    # Columns are read as bytes and decoded per batch, so that one invalid UTF-8 byte costs one U+FFFD in
    # one value (counted as rows_with_replaced_bytes) instead of the whole file.
    utf8 = codecs.lookup(encoding).name == "utf-8"
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding, block_size=4 << 20),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.binary() if utf8 else pa.string()
                                                           for name in header},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    for batch in reader:
        yield from rejected
        rejected.clear()
        yield _decoded(batch, stats.file(path)) if utf8 else batch
    yield from rejected


def _decoded(batch: Any, counts: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    columns, damaged = [], set()
    for column in batch.columns:
        if not pa.types.is_binary(column.type):
            columns.append(column)
            continue
        try:
            columns.append(pc.cast(column, pa.string()))
        except pa.ArrowInvalid:
            values = column.to_pylist()
            fixed = []
            for row, value in enumerate(values):
                text = None if value is None else value.decode("utf-8", "replace")
                if text is not None and "\ufffd" in text and "\ufffd".encode() not in value:
                    damaged.add(row)
                fixed.append(text)
            columns.append(pa.array(fixed, pa.string()))
    if damaged:
        counts["rows_with_replaced_bytes"] += len(damaged)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _without_row_text(message: str) -> str:
    """pyarrow's CSV errors end with the offending row's text, which can hold a username: keep the rest."""
    return re.sub(r"(Expected \d+ columns?, got \d+)\s*:.*", r"\1", message, flags=re.DOTALL)


def _parquet_batches(path: Path) -> Iterator[Any]:
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
