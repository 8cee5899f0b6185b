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
