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


def test_phase_logs_before_and_after_with_duration_and_rate(caplog: pytest.LogCaptureFixture) -> None:
    from edumine.progress import phase

    caplog.set_level(logging.INFO, logger="edumine.progress")
    with phase("topics: k-means fit", 12_345):
        pass
    with phase("lineage: prevalence intervals", 40, unit="topic-windows"):
        pass
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "topics: k-means fit: 12,345 docs ..."
    assert lines[1].startswith("topics: k-means fit: 12,345 docs in 0 s (") and lines[1].endswith(" docs/s)")
    assert lines[3].startswith("lineage: prevalence intervals: 40 topic-windows in 0 s (") and \
        lines[3].endswith(" topic-windows/s)")


def test_phase_says_nothing_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    from edumine.progress import phase

    caplog.set_level(logging.INFO, logger="edumine.progress")
    with pytest.raises(ValueError):
        with phase("store: build", 3, unit="tables"):
            raise ValueError("boom")
    assert [r.getMessage() for r in caplog.records] == ["store: build: 3 tables ..."]


def test_nested_progress_shares_one_display_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Scoring themes embeds inside its own progress: the inner bar is a line of the outer display (rich before
    14.1 refuses a second live display), and the display closes with the outer one."""
    import io
    import sys

    import edumine.progress as progress_module

    monkeypatch.setattr(sys, "stderr", type("Tty", (io.StringIO,), {"isatty": lambda self: True})())
    caplog.set_level(logging.INFO, logger="edumine.progress")
    with Progress("themes: scoring", total=4) as outer:
        display = progress_module._display["bar"]
        assert display is not None
        for _ in range(2):
            with Progress("embedding", total=10, unit="docs") as inner:
                assert progress_module._display["bar"] is display and len(display.tasks) == 2
                inner.advance(10)
            assert len(display.tasks) == 1
            outer.advance(2)
        assert display.tasks[0].completed == 4 and display.tasks[0].fields["unit"] == "docs"
    assert progress_module._display == {"bar": None, "users": 0}
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == \
        ["embedding: 10 docs", "embedding: 10 docs", "themes: scoring: 4 docs"]
