"""NDJSON files (zstandard, gzip or plain) read as blocks of whole lines, and lines parsed as JSON objects.

Streams with bounded memory whatever the file size (zstd window up to 2 GiB, as monthly Pushshift dumps need).
Every reader of dumps splits the same blocks (``open_blocks``), so the line-at-a-time and the batched paths
see the same lines with the same numbers; a truncated or corrupt file keeps what was read before the damage.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Full, Queue
from typing import Any, BinaryIO

import orjson

from edumine.miners.base import ReadStats, Rejected


class TruncatedFile(Exception):
    """A compressed stream that ended inside a frame: the file was cut short (a partial download)."""


def _zstd_blocks(raw: BinaryIO, read_size: int = 1 << 20) -> Iterator[bytes]:
    """Blocks of whole lines (joined by newlines, without the last one) of a (possibly multi-frame) zstd
    stream; raises TruncatedFile if it ends mid-frame."""
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=2**31)
    dobj = dctx.decompressobj()
    pending = b""
    while chunk := raw.read(read_size):
        data = dobj.decompress(chunk)
        while dobj.eof and dobj.unused_data:
            rest, dobj = dobj.unused_data, dctx.decompressobj()
            data += dobj.decompress(rest)
        if data:
            pending, block = _cut(pending + data)
            if block is not None:
                yield block
    if not dobj.eof:
        raise TruncatedFile(f"the zstd stream ends inside a frame (file cut short?); the partial last line "
                            f"({len(pending)} bytes) is dropped")
    if pending:
        yield pending


def _plain_blocks(stream: BinaryIO, read_size: int = 1 << 20) -> Iterator[bytes]:
    pending = b""
    while chunk := stream.read(read_size):
        pending, block = _cut(pending + chunk)
        if block is not None:
            yield block
    if pending:
        yield pending


def _cut(data: bytes) -> tuple[bytes, bytes | None]:
    """(the unfinished last line, the whole lines before it or None)."""
    cut = data.rfind(b"\n")
    return (data, None) if cut < 0 else (data[cut + 1:], data[:cut])


@contextmanager
def open_blocks(path: Path) -> Iterator[Iterator[bytes]]:
    """Blocks of whole lines (newline-separated, no trailing newline) of a .zst, .gz or plain NDJSON file.
    Every reader of dumps splits these same blocks, so the line-at-a-time and the batched paths see the
    same lines with the same numbers."""
    raw = open(path, "rb")
    try:
        name = path.name.lower()
        if name.endswith((".zst", ".zstd")):
            yield _zstd_blocks(raw)
        elif name.endswith(".gz"):
            yield _plain_blocks(gzip.open(raw), 1 << 16)  # type: ignore[arg-type]  (small reads: a damaged
            # file keeps the lines before the damage)
        else:
            yield _plain_blocks(raw)
    finally:
        raw.close()


@contextmanager
def open_lines(path: Path) -> Iterator[Iterator[bytes]]:
    """Binary line iterator (lines without their newline) over a .zst, .gz or plain NDJSON file."""
    with open_blocks(path) as blocks:
        yield (line for block in blocks for line in block.split(b"\n"))


def parse_line(location: str, line: bytes, counts: Counter) -> dict | Rejected:
    """One non-empty line as a JSON object, or why not (a Rejected)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        # orjson refuses invalid UTF-8 and lone surrogates; the standard parser reads them (the
        # record normaliser then repairs the text) rather than losing the record.
        try:
            obj = json.loads(line.decode("utf-8", "replace"))
            counts["lines_with_repaired_text"] += 1
        except ValueError:
            return Rejected(location, "invalid_json", str(exc), _text(line))
    if type(obj) is not dict:
        return Rejected(location, "not_an_object", f"a JSON {type(obj).__name__}", _text(line))
    return obj


def iter_json_lines(path: Path, stats: ReadStats) -> Iterator[tuple[int, bytes, Any] | Rejected]:
    """(line number, raw line, parsed object) per non-empty line; bad lines and files as Rejected."""
    counts = stats.file(path)
    lineno = 0
    try:
        with open_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                counts["lines"] += 1
                obj = parse_line(f"{path}:{lineno}", line, counts)
                if isinstance(obj, Rejected):
                    yield obj
                    continue
                yield lineno, line, obj
    except Exception as exc:  # noqa: BLE001  (a damaged file must not stop the run)
        yield unreadable(path, lineno, exc)


def unreadable(path: Path, lineno: int, exc: Exception) -> Rejected:
    return Rejected(str(path), "unreadable_file", f"stopped after line {lineno}: {type(exc).__name__}: {exc}")


def _text(line: bytes) -> str:
    return line[:2000].decode("utf-8", "replace")


def _read_ahead(blocks: Iterator[bytes], depth: int = 4) -> Iterator[bytes]:
    """``blocks`` decompressed in a thread while the caller works on the previous ones (zstandard and
    gzip release the GIL); an error of the reader is raised here, after the blocks read before it."""
    done = object()
    queue: Queue = Queue(depth)
    failure: list[BaseException] = []
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.2)
                return True
            except Full:
                continue
        return False

    def pump() -> None:
        try:
            for block in blocks:
                if not put(block):
                    return
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer)
            failure.append(exc)
        put(done)

    thread = threading.Thread(target=pump, name="dump-reader", daemon=True)
    thread.start()
    try:
        while (block := queue.get()) is not done:
            yield block
    finally:
        stop.set()
        thread.join()
    if failure:
        raise failure[0]
