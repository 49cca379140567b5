"""Concurrent /v1/analyze calls share analyzer calls, fairly between callers; a failing model reaches every
waiting caller; a long text's sentence work is bounded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.runtime import AnalysisBusy, MicroBatcher, Models
from nlp.analyzer import FeedbackAnalyzer
from nlp.sentences import SpacySentenceSplitter
from nlp.sentiment_model import BUILTIN_SENTIMENT_DIR, TransformerSentiment
from tests.api.conftest import BrokenAnalyzer, serve

LONG = {"en": "The staff were friendly but the invoice was wrong again. " * 40,
        "sv": "Personalen var trevlig men fakturan var fel igen. " * 40,
        "pl": "Obsługa była miła, ale faktura znowu była błędna. " * 40}  # each over 2,000 characters


class CountingAnalyzer:
    """The real analyzer, recording the size of each batch it is handed."""

    def __init__(self, analyzer):
        self.analyzer, self.batches, self.texts = analyzer, [], []

    @property
    def heads(self):
        return self.analyzer.heads

    def analyze(self, texts):
        self.batches.append(len(texts))
        self.texts.append(list(texts))
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


def test_a_small_call_after_a_huge_one_is_answered_before_the_huge_one_ends(models):
    """The batcher once ran a whole call as one batch in arrival order: 11 long texts held everyone for seconds."""
    gated = GatedAnalyzer(models.analyzer)
    huge = [LONG[language] for language in ("en", "sv", "pl", "en", "sv", "pl")]

    async def run():
        batcher = MicroBatcher(gated, wait_s=0, max_batch=32, max_batch_chars=2_000, concurrency=1)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.analyze(huge, caller="bulk"))
            while not gated.entered.is_set():  # the model is busy with the first batch of the huge call
                await asyncio.sleep(0.01)
            small = asyncio.ensure_future(batcher.analyze(["Tack så mycket!"], caller="small"))
            await asyncio.sleep(0.05)
            gated.gate.set()
            small_result = await small
            huge_done_with_small = first.done()
            return small_result, huge_done_with_small, await first
        finally:
            gated.gate.set()
            await batcher.stop()

    small, huge_done_with_small, huge_results = asyncio.run(run())
    assert small[0].language == "sv" and not huge_done_with_small
    assert gated.texts[:2] == [huge[:1], ["Tack så mycket!"]]  # one long text a batch; the small call next
    assert [a.language for a in huge_results] == ["en", "sv", "pl", "en", "sv", "pl"]  # split, in order
    assert len(gated.texts) == 7


class LongTextGate(CountingAnalyzer):
    """The real analyzer, holding every batch with a long text until the test opens the gate."""

    def __init__(self, analyzer):
        super().__init__(analyzer)
        self.gate = threading.Event()

    def analyze(self, texts):
        if any(len(t) > 1000 for t in texts):
            self.gate.wait(timeout=30)
        return super().analyze(texts)


def test_one_callers_long_texts_leave_a_lane_for_the_others(models):
    gated = LongTextGate(models.analyzer)

    async def run():
        batcher = MicroBatcher(gated, wait_s=0, max_batch=32, max_batch_chars=2_000, concurrency=2)
        batcher.start()
        try:
            bulk = asyncio.ensure_future(batcher.analyze([LONG["en"], LONG["sv"], LONG["pl"]], caller="bulk"))
            await asyncio.sleep(0.05)
            small = await asyncio.wait_for(batcher.analyze(["Dziękuję!", "Thanks!"], caller="small"), 10)
            bulk_batches_while_held = sum(1 for texts in gated.texts if len(texts[0]) > 1000)
            gated.gate.set()
            return small, bulk_batches_while_held, await bulk
        finally:
            gated.gate.set()
            await batcher.stop()

    small, bulk_batches_while_held, bulk = asyncio.run(run())
    assert [a.language for a in small] == ["pl", "en"]  # answered while the long text held the other lane
    assert bulk_batches_while_held == 0  # the held batch had not returned; the bulk caller had no second lane
    assert [a.language for a in bulk] == ["en", "sv", "pl"]


@pytest.fixture(scope="module")
def capped_models(encoder, language_detector, models):
    """Sentence sentiment on the real text model, at most 3 sentences a text."""
    sentiment = TransformerSentiment.load(BUILTIN_SENTIMENT_DIR, encoder)
    analyzer = FeedbackAnalyzer(encoder, language_detector, sentiment=sentiment,
                                sentence_splitter=SpacySentenceSplitter(), max_sentences=3)
    return Models(analyzer=analyzer, churn_model=models.churn_model)


def test_sentence_analysis_of_a_long_text_stops_at_max_sentences(settings, database_url, capped_models):
    """Every sentence of a 10,000-character text was scored: ~340 model passes for one text."""
    texts = ["The app is great. Delivery was late. The invoice was wrong. Support was slow. I will leave.",
             "Great staff, but the invoice was wrong."]
    with serve(settings, database_url, capped_models) as api:
        response = api.call("POST", "/v1/analyze", "viewer", json={"texts": texts})
    assert response.status_code == 200
    long, short = (r["analysis"] for r in response.json()["results"])
    assert long["sentences_truncated"] is True and len(long["sentences"]) == 3
    assert [s["text"] for s in long["sentences"]] == ["The app is great.", "Delivery was late.", "The invoice was wrong."]
    assert long["sentiment"] is not None  # the document is still scored as a whole
    assert short["sentences_truncated"] is False and len(short["sentences"]) == 2 and short["mixed"] is True
