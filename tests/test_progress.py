"""Progress off a terminal: log lines with count, rate and time left, at most every `every` seconds."""

from __future__ import annotations

import logging

import pytest

from edumine.progress import Progress


def test_log_lines_carry_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edumine.progress")
    with Progress("embedding", total=1000, every=0.0) as progress:
        progress.advance(250)
        progress.advance(250)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("embedding: 250 of 1,000 (25 %), ") and "docs/s, about" in lines[0]
    assert lines[1].startswith("embedding: 500 of 1,000 (50 %)") and lines[1].endswith("left")
    assert lines[-1].startswith("embedding: 500 docs in ") and lines[-1].endswith("docs/s)")


def test_quiet_between_intervals_and_without_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edumine.progress")
    with Progress("collecting x", unit="records", every=3600.0, summary=False) as progress:
        for _ in range(5):
            progress.advance(10)
    assert progress.done == 50 and caplog.records == []


def test_embedding_shows_its_progress_in_steps_with_the_same_vectors(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """The topic and theme stages embed through ``embed_with_cache``: a slow model encodes in steps of its
    ``progress_step`` docs, each step advancing the bar (docs/s, time left), and the vectors are those of one call."""
    import io

    import numpy as np
    import orjson
    import zstandard

    from edumine.models.embeddings.backends import TfidfSvdEmbedder, embed_with_cache

    from conftest import CORPORA

    dump = CORPORA / "reddit-teaching-2017-18" / "teachingresources_submissions.zst"
    with open(dump, "rb") as handle:
        reader = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(handle))
        posts = [orjson.loads(line) for line in reader if line.strip()][:300]
    texts = [f"{p.get('title') or ''} {p.get('selftext') or ''}" for p in posts]
    uids = [f"reddit:post:{p['id']}" for p in posts]
    embedder = TfidfSvdEmbedder(dims=16, min_df=1).fit(texts)
    embedder.progress_step = 64
    caplog.set_level(logging.INFO)
    vectors, info = embed_with_cache(embedder, tmp_path, uids, [str(i) for i in range(len(texts))], texts)
    assert info["embedded"] == 300
    np.testing.assert_allclose(vectors, embedder.encode(texts), rtol=1e-5, atol=1e-6)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("embedding (embeddings.tfidf_svd.v1)")]
    assert lines and lines[-1].startswith("embedding (embeddings.tfidf_svd.v1): 300 docs in") and \
        lines[-1].endswith("docs/s)")
