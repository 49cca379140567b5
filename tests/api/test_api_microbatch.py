"""Concurrent /v1/analyze calls share one analyzer call; a failing model reaches every waiting caller."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.runtime import AnalysisBusy, MicroBatcher, Models
from tests.api.conftest import BrokenAnalyzer, serve


class CountingAnalyzer:
    """The real analyzer, recording the size of each batch it is handed."""

    def __init__(self, analyzer):
        self.analyzer, self.batches = analyzer, []

    @property
    def heads(self):
        return self.analyzer.heads

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


def test_a_full_queue_and_a_long_wait_answer_busy_and_the_batcher_recovers(models):
    """The queue once grew without bound and callers waited forever behind a stuck model."""
    gated = GatedAnalyzer(models.analyzer)

    async def run():
        batcher = MicroBatcher(gated, wait_s=0, max_batch=32, max_queue=1, timeout_s=0.5)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.analyze(["Tack så mycket!"]))
            while not gated.entered.is_set():  # the model is stuck on the first call
                await asyncio.sleep(0.01)
            queued = asyncio.ensure_future(batcher.analyze(["Dziękuję!"]))
            await asyncio.sleep(0)
            started = time.monotonic()
            with pytest.raises(AnalysisBusy, match="1 analyze calls are already waiting"):
                await batcher.analyze(["Thanks a lot!"])
            refused_in = time.monotonic() - started
            waited = await asyncio.gather(first, queued, return_exceptions=True)
            gated.gate.set()
            for _ in range(100):  # the timed-out call holds its slot until the freed model skips it
                try:
                    return refused_in, waited, await batcher.analyze(["Thanks a lot!"])
                except AnalysisBusy:
                    await asyncio.sleep(0.05)
            raise AssertionError("the batcher did not recover once the model was free")
        finally:
            gated.gate.set()
            await batcher.stop()

    refused_in, waited, later = asyncio.run(run())
    assert refused_in < 0.1
    assert all(isinstance(w, AnalysisBusy) and "within 0.5 s" in str(w) for w in waited)
    assert later[0].language == "en"
    assert gated.batches == [1, 1]  # the timed-out queued call was never analysed


def test_analyze_endpoint_answers_503_with_retry_after_when_the_model_is_stuck(settings, database_url, models):
    gated = GatedAnalyzer(models.analyzer)
    stuck = Models(analyzer=gated, churn_model=models.churn_model)
    with serve(settings, database_url, stuck, analyze_max_queue=1, analyze_timeout_s=0.3) as api:
        started = time.monotonic()
        try:
            response = api.call("POST", "/v1/analyze", "viewer", json={"texts": ["hello"]})
        finally:
            gated.gate.set()  # frees the model's thread before the app stops
        assert time.monotonic() - started < 5
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "analysis_busy"
