"""Progress of long work, as a person and a scheduler each need it.

On a terminal: a rich bar with the count, the rate (docs/s) and the time left. Elsewhere (a Prefect worker, cron,
CI): a log line at most every ``every`` seconds with the same numbers, and one at the end, so a nightly run's
logs say how fast it went and how far it got.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("edumine.progress")


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
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, ProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            from rich.text import Text

            unit = self.unit

            class Rate(ProgressColumn):
                def render(self, task: Any) -> Text:
                    return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else f"- {unit}/s")

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
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
            self._bar.stop()
        if self.done and self.summary:
            elapsed = time.perf_counter() - self._started
            self.logger.info("%s: %s %s in %s (%s %s/s)", self.description, f"{self.done:,}", self.unit,
                             _duration(elapsed), f"{self.done / max(elapsed, 1e-9):,.0f}", self.unit)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
