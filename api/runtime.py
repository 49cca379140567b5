"""What the app holds while it runs: loaded models, the database, the rate limiter, the micro-batcher."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable, Sequence
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


@dataclass(eq=False)
class _Call:
    caller: Hashable
    texts: list[str]
    future: asyncio.Future
    results: list[Analysis | None]
    dispatched: int = 0
    """Texts handed to a batch so far, in order."""
    finished: int = 0


@dataclass(eq=False)
class _Caller:
    served: float
    """Characters dispatched for this caller on the batcher's virtual clock (start-time fair queuing)."""
    calls: deque[_Call] = field(default_factory=deque)


class MicroBatcher:
    """Concurrent analyze calls share analyzer calls, run off the event loop, fairly between callers.

    A call's texts wait under its caller (an API key). A batch is filled text by text from the
    waiting caller with the fewest characters dispatched (start-time fair queuing: a caller that
    arrives starts at the current clock, not behind another's backlog), up to ``max_batch`` texts
    and ``max_batch_chars`` characters (a longer text goes alone). Up to ``concurrency`` batches run
    at once, at most one per caller, so one caller's long texts leave a lane to the others: a small
    call waits for about one batch at most, never for another caller's whole call. Calls that
    arrived while the analyzer was busy form the next batch at once; ``wait_s > 0`` also holds a
    batch open that long for more (trading latency at low load for fewer calls). At most
    ``max_queue`` calls wait, each at most ``timeout_s``; beyond either, :class:`AnalysisBusy`.
    """

    def __init__(self, analyzer: Analyzer, wait_s: float, max_batch: int, max_queue: int = 256,
                 timeout_s: float = 30.0, *, max_batch_chars: int = 2_000, concurrency: int = 2):
        self.analyzer, self.wait_s, self.max_batch = analyzer, wait_s, max_batch
        self.max_queue, self.timeout_s = max_queue, timeout_s
        self.max_batch_chars, self.concurrency = max_batch_chars, concurrency
        self._callers: dict[Hashable, _Caller] = {}
        self._running: set[Hashable] = set()
        self._clock = 0.0
        self._wake: asyncio.Event | None = None
        self._lanes: list[asyncio.Task] = []

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._lanes = [asyncio.create_task(self._lane()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        for lane in self._lanes:
            lane.cancel()
        await asyncio.gather(*self._lanes, return_exceptions=True)

    async def analyze(self, texts: Sequence[str], caller: Hashable = None) -> list[Analysis]:
        """One analysis per text, in order; ``caller`` (an API key id) is whom the model is shared between."""
        if not texts:
            return []
        waiting = sum(1 for c in self._callers.values() for call in c.calls if not call.future.done())
        if waiting >= self.max_queue:
            raise AnalysisBusy(f"{self.max_queue} analyze calls are already waiting")
        call = _Call(caller, list(texts), asyncio.get_running_loop().create_future(), [None] * len(texts))
        self._callers.setdefault(caller, _Caller(served=self._clock)).calls.append(call)
        self._wake.set()
        try:
            return await asyncio.wait_for(call.future, self.timeout_s)  # cancels the future: its texts are skipped
        except asyncio.TimeoutError:
            raise AnalysisBusy(f"no analysis within {self.timeout_s:g} s") from None

    def _ready(self) -> dict[Hashable, _Caller]:
        """Callers with texts to dispatch and no batch running; a caller with nothing left is forgotten."""
        for key in list(self._callers):
            calls = self._callers[key].calls
            while calls and calls[0].future.done():
                calls.popleft()
            if not calls:
                del self._callers[key]
        return {key: c for key, c in self._callers.items() if key not in self._running}

    def _next_batch(self) -> list[tuple[_Call, int]]:
        batch, chars, ready = [], 0, self._ready()
        while ready and len(batch) < self.max_batch:
            key = min(ready, key=lambda k: ready[k].served)
            caller = ready[key]
            call = caller.calls[0]
            text = call.texts[call.dispatched]
            if batch and chars + len(text) > self.max_batch_chars:
                break
            self._clock = caller.served
            caller.served += len(text)
            chars += len(text)
            batch.append((call, call.dispatched))
            call.dispatched += 1
            if call.dispatched == len(call.texts):
                caller.calls.popleft()
                if not caller.calls:
                    del ready[key]
        return batch

    async def _hold(self) -> None:
        """Wait up to ``wait_s`` for a full batch of texts to arrive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while (remaining := deadline - loop.time()) > 0:
            waiting = sum(len(call.texts) - call.dispatched for c in self._ready().values() for call in c.calls)
            if waiting >= self.max_batch:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _lane(self) -> None:
        while True:
            if self.wait_s > 0 and self._ready():
                await self._hold()
            batch = self._next_batch()
            if not batch:
                self._wake.clear()
                await self._wake.wait()
                continue
            callers = {call.caller for call, _ in batch}
            self._running |= callers
            try:
                results = await asyncio.to_thread(self.analyzer.analyze, [call.texts[i] for call, i in batch])
            except Exception as exc:  # every caller in the batch hears about the failure
                for call, _ in batch:
                    if not call.future.done():
                        call.future.set_exception(exc)
                continue
            finally:
                self._running -= callers
                self._wake.set()  # their next texts may go now
            for (call, i), result in zip(batch, results):
                if not call.future.done():
                    call.results[i] = result
                    call.finished += 1
                    if call.finished == len(call.texts):
                        call.future.set_result(call.results)


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
