"""Progress of long work, as a person and a scheduler each need it.

On a terminal: a rich bar with the count, the rate (docs/s) and the time left. Elsewhere (a Prefect worker, cron,
CI): a log line at most every ``every`` seconds with the same numbers, and one at the end, so a nightly run's
logs say how fast it went and how far it got.

``Progress`` is for a loop with a count (docs, chunks, windows, groups): advance it per chunk, not per doc, in hot
loops. ``phase`` is for one opaque call (a scikit-learn fit, a DuckDB build): a log line before and one after
with its duration and rate. Progress inside progress (the theme stage's scoring, which embeds) shares one rich
display on a terminal: the inner work is a second line of the same bar.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("edumine.progress")

# The one rich display on the terminal and how many Progress objects use it: a nested Progress adds a line to it
# (rich before 14.1 refuses a second live display).
_display: dict[str, Any] = {"bar": None, "users": 0}
_display_lock = threading.Lock()  # collection runs sources on threads


def _shared_bar() -> Any:
    with _display_lock:
        return _open_bar()


def _open_bar() -> Any:
    if _display["bar"] is None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, ProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                unit = task.fields.get("unit", "docs")
                return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else f"- {unit}/s")

        bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), transient=True)
        bar.start()
        _display["bar"] = bar
    _display["users"] += 1
    return _display["bar"]


def _release_bar(task: Any) -> None:
    with _display_lock:
        _close_bar(task)


def _close_bar(task: Any) -> None:
    bar = _display["bar"]
    if bar is None:
        return
    bar.remove_task(task)
    _display["users"] -= 1
    if _display["users"] <= 0:
        bar.stop()
        _display["bar"], _display["users"] = None, 0


class Progress:
    def __init__(self, description: str, total: int | None = None, *, unit: str = "docs",
                 logger: logging.Logger | None = None, every: float = 30.0, summary: bool = True) -> None:
        self.description = description
        self.summary = summary
        self.total = total
        self.unit = unit
        self.logger = logger or log
        self.every = every
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._started = 0.0
        self._logged = 0.0

    def __enter__(self) -> Progress:
        self._started = self._logged = time.perf_counter()
        if sys.stderr.isatty():
            self._bar = _shared_bar()
            self._task = self._bar.add_task(self.description, total=self.total, unit=self.unit)
        return self

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.advance(self._task, n)
            return
        now = time.perf_counter()
        if now - self._logged >= self.every:
            self._logged = now
            self.logger.info("%s", self.status())

    def status(self) -> str:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.description}: {self.done:,}"
        if self.total:
            left = (self.total - self.done) / rate if rate else float("inf")
            text += f" of {self.total:,} ({100 * self.done / self.total:.0f} %), {rate:,.0f} {self.unit}/s, " \
                    f"about {_duration(left)} left"
        else:
            text += f" {self.unit}, {rate:,.0f} {self.unit}/s"
        return text

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            _release_bar(self._task)
            self._bar = None
        if self.done and self.summary:
            log_rate(self.logger, self.description, self.done, self.unit, time.perf_counter() - self._started)


@contextmanager
def phase(description: str, count: int, *, unit: str = "docs", logger: logging.Logger | None = None) -> Iterator[None]:
    """One opaque call over ``count`` items: a log line before it and one after with its duration and rate
    (the same summary line a ``Progress`` ends with). Nothing is logged after an exception."""
    logger = logger or log
    logger.info("%s: %s %s ...", description, f"{count:,}", unit)
    started = time.perf_counter()
    yield
    log_rate(logger, description, count, unit, time.perf_counter() - started)


def log_rate(logger: logging.Logger, description: str, count: int, unit: str, elapsed: float) -> None:
    """The summary line of finished work: "<description>: N <unit> in <duration> (R <unit>/s)"."""
    logger.info("%s: %s %s in %s (%s %s/s)", description, f"{count:,}", unit, _duration(elapsed),
                f"{count / max(elapsed, 1e-9):,.0f}", unit)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
