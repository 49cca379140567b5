"""Job progress: a rich bar with rows/s and ETA on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts rows as chunks finish; the ETA is estimated from input bytes, known up front."""

    def __init__(self, total_bytes: int, stream: TextIO | None = None, interval_s: float = 10.0):
        self.total = max(total_bytes, 1)
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.rows = self.failed = self.done_bytes = 0
        self.started = self._last_log = time.monotonic()
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Bar(
                TextColumn("scoring"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[rows]:,} rows ({task.fields[rate]:,.0f} rows/s, {task.fields[failed]:,} failed)"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("score", total=self.total, rows=0, rate=0.0, failed=0)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, rows: int, failed: int, weight: int) -> None:
        self.rows += rows
        self.failed += failed
        self.done_bytes += weight
        now = time.monotonic()
        rate = self.rows / max(now - self.started, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done_bytes, rows=self.rows, rate=rate, failed=self.failed)
        elif now - self._last_log >= self.interval_s or self.done_bytes >= self.total:
            self._last_log = now
            share = min(self.done_bytes / self.total, 1.0)
            left = (now - self.started) * (1 - share) / share if share > 0 else float("nan")
            print(
                f"scored {self.rows} rows ({self.failed} failed), {rate:.0f} rows/s,"
                f" {share:.0%} of input, ETA {left:.0f} s",
                file=self.stream, flush=True,
            )
