"""What finding damaged files costs (docs/reliability.md, "Damaged files").

    python benchmarks/damage_checks.py [ROWS]

1. Writing and reading a docs-shaped table (uid, lemmas, text; ROWS rows, default 200,000) with and without
   Parquet page checksums, side by side, best of 3: the write cost of ``write_page_checksum`` and the read cost
   of ``page_checksum_verification`` (what ``Lake.read`` does);
2. sealing and verifying a model-sized folder (SHA-256 of every file): 200 MB of files.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from edumine import integrity


def best(fn, repeat: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    table = pa.table({"uid": [f"reddit:post:{i}" for i in range(rows)],
                      "lemmas": [f"teacher student lesson plan grade {i % 977} classroom behaviour" for i in range(rows)],
                      "text": [f"A teacher wrote about lesson {i}: {os.urandom(48).hex()} " * 2 for i in range(rows)]})
    with tempfile.TemporaryDirectory() as tmp:
        plain, checked = Path(tmp) / "plain.parquet", Path(tmp) / "checked.parquet"
        w_plain = best(lambda: pq.write_table(table, plain, compression="zstd"))
        w_checked = best(lambda: pq.write_table(table, checked, compression="zstd", write_page_checksum=True))
        r_plain = best(lambda: pq.read_table(plain))
        r_checked = best(lambda: pq.read_table(checked, page_checksum_verification=True))
        mb = checked.stat().st_size / 2**20
        print(f"{rows:,} docs rows, {mb:.1f} MB: write {w_plain:.3f} s plain, {w_checked:.3f} s with page checksums "
              f"({(w_checked / w_plain - 1) * 100:+.0f}%); read {r_plain:.3f} s plain, {r_checked:.3f} s verified "
              f"({(r_checked / r_plain - 1) * 100:+.0f}%)")
        folder = Path(tmp) / "model"
        folder.mkdir()
        for i in range(4):
            (folder / f"part-{i}.bin").write_bytes(os.urandom(50 << 20))
        sealing = best(lambda: integrity.seal(folder), repeat=1)
        verifying = best(lambda: integrity.verify(folder, "model"), repeat=1)
        print(f"model folder 200 MB: seal {sealing:.3f} s, verify {verifying:.3f} s")


if __name__ == "__main__":
    main()
