"""What the app holds while it runs: loaded models, the database, the rate limiter, the micro-batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from api.auth import RateLimiter
from api.pii import PiiRedactor
from api.settings import Settings
from churn.model import ChurnModel
from nlp.analyzer import Analyzer
from nlp.results import Analysis


@dataclass
class Models:
    """Loaded once per process (lifespan) and shared by every request; tests share one per session."""

    analyzer: Analyzer
    churn_model: ChurnModel


class AnalysisBusy(Exception):
    """The analyze queue is full, or a call waited past its timeout: the caller should retry later."""


class MicroBatcher:
    """Concurrent analyze calls share one analyzer call, run off the event loop.

    Calls that arrived while the analyzer was busy form the next batch at once; ``wait_s > 0``
    also holds a batch open that long for more (trading latency at low load for fewer calls).
    At most ``max_queue`` calls wait, each at most ``timeout_s``; beyond either, :class:`AnalysisBusy`.
    """

    def __init__(self, analyzer: Analyzer, wait_s: float, max_batch: int,
                 max_queue: int = 256, timeout_s: float = 30.0):
        self.analyzer, self.wait_s, self.max_batch = analyzer, wait_s, max_batch
        self.max_queue, self.timeout_s = max_queue, timeout_s
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def analyze(self, texts: Sequence[str]) -> list[Analysis]:
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((list(texts), future))
        except asyncio.QueueFull:
            raise AnalysisBusy(f"{self.max_queue} analyze calls are already waiting") from None
        try:
            return await asyncio.wait_for(future, self.timeout_s)  # cancels the future: its texts are skipped
        except asyncio.TimeoutError:
            raise AnalysisBusy(f"no analysis within {self.timeout_s:g} s") from None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            while not self._queue.empty() and sum(len(t) for t, _ in jobs) < self.max_batch:
                jobs.append(self._queue.get_nowait())
            deadline = loop.time() + self.wait_s
            while self.wait_s > 0 and sum(len(t) for t, _ in jobs) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            jobs = [(job, future) for job, future in jobs if not future.done()]
            if not jobs:
                continue
            texts = [t for job, _ in jobs for t in job]
            try:
                results = await asyncio.to_thread(self.analyzer.analyze, texts)
            except Exception as exc:  # every waiting caller hears about the failure
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for job, future in jobs:
                if not future.done():
                    future.set_result(results[start:start + len(job)])
                start += len(job)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    models: Models
    redactor: PiiRedactor
    limiter: RateLimiter
    failed_auth: RateLimiter
    text_volume: RateLimiter
    """Characters a key may send to ``/v1/analyze``: the model's time, not only the request count."""
    batcher: MicroBatcher
    versions: dict[str, str] = field(default_factory=dict)
    churn_dir: Path | None = None
    """Where the churn model in service was loaded from (None: the one shipped with cxm)."""
