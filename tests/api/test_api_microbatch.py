"""Concurrent /v1/analyze calls share one analyzer call; a failing model reaches every waiting caller."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.runtime import MicroBatcher
from tests.api.conftest import BrokenAnalyzer


class CountingAnalyzer:
    """The real analyzer, recording the size of each batch it is handed."""

    def __init__(self, analyzer):
        self.analyzer, self.batches = analyzer, []

    def analyze(self, texts):
        self.batches.append(len(texts))
        return self.analyzer.analyze(texts)


def test_concurrent_calls_share_a_batch_and_keep_their_order(models):
    counting = CountingAnalyzer(models.analyzer)
    texts = [["Hej, allt fungerar bra."], ["Dziękuję za szybką pomoc."], ["Thanks a lot!", "Tack så mycket!"]]

    async def run():
        batcher = MicroBatcher(counting, wait_s=0.2, max_batch=32)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.analyze(t) for t in texts))
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    assert counting.batches == [4]
    assert [[a.language for a in r] for r in results] == [["sv"], ["pl"], ["en", "sv"]]


class GatedAnalyzer(CountingAnalyzer):
    """The real analyzer, whose first call waits until the test opens the gate."""

    def __init__(self, analyzer):
        super().__init__(analyzer)
        self.entered, self.gate = threading.Event(), threading.Event()

    def analyze(self, texts):
        if not self.batches:
            self.entered.set()
            self.gate.wait(timeout=30)
        return super().analyze(texts)


def test_calls_queued_while_the_model_is_busy_share_the_next_batch_without_waiting(models):
    gated = GatedAnalyzer(models.analyzer)

    async def run():
        batcher = MicroBatcher(gated, wait_s=0, max_batch=32)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.analyze(["Tack så mycket!"]))
            while not gated.entered.is_set():  # the model is busy with the first call
                await asyncio.sleep(0.01)
            later = [asyncio.ensure_future(batcher.analyze([t])) for t in ("Dziękuję!", "Thanks a lot!")]
            await asyncio.sleep(0.05)
            gated.gate.set()
            return await asyncio.gather(first, *later)
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    assert gated.batches == [1, 2]
    assert [r[0].language for r in results] == ["sv", "pl", "en"]


def test_a_failing_model_fails_every_waiting_call():
    async def run():
        batcher = MicroBatcher(BrokenAnalyzer(), wait_s=0.05, max_batch=8)
        batcher.start()
        try:
            return await asyncio.gather(batcher.analyze(["a"]), batcher.analyze(["b"]), return_exceptions=True)
        finally:
            await batcher.stop()

    outcomes = asyncio.run(run())
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_analyze_endpoint_reports_a_broken_model_in_the_one_error_format(api):
    from api.deps import get_analyzer

    api.app.dependency_overrides[get_analyzer] = BrokenAnalyzer
    try:
        response = api.call("POST", "/v1/analyze", "viewer", json={"texts": ["hello"]})
    finally:
        api.app.dependency_overrides.clear()
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "analysis_unavailable"


@pytest.mark.parametrize("texts", [[], ["x"] * 65])
def test_analyze_rejects_empty_and_oversized_lists(api, texts):
    response = api.call("POST", "/v1/analyze", "viewer", json={"texts": texts})
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
