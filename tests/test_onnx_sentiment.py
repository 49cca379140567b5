"""The ONNX Runtime backend computes what torch computes, and its export cache is safe to reuse."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from nlp.onnx_sentiment import MODEL_FILE, OnnxSentiment, ensure_onnx_model, export_key, weights_fingerprint
from nlp.sentiment_model import BUILTIN_SENTIMENT_DIR, TransformerSentiment

TEXTS = [
    "The staff were wonderful and fixed my problem right away, thank you!",
    "Väldigt dålig service, de svarade aldrig och fakturan var fel.",
    "Fatalna obsługa, towar przyszedł uszkodzony i nikt nie odpowiada.",
    "ok",
    "The service was awful and slow. " * 200,  # truncated at max_length
]


@pytest.fixture(scope="module")
def torch_sentiment(encoder):
    return TransformerSentiment.load(BUILTIN_SENTIMENT_DIR, encoder)


@pytest.fixture(scope="module")
def onnx_sentiment(torch_sentiment, settings):
    return OnnxSentiment.from_torch(torch_sentiment, settings.model_dir)


def test_onnx_matches_torch_probabilities_and_embeddings(torch_sentiment, onnx_sentiment):
    texts = TEXTS * 8  # more than one batch of mixed lengths
    np.testing.assert_allclose(onnx_sentiment.predict_proba(texts), torch_sentiment.predict_proba(texts), atol=1e-5)
    sentiments, embeddings = onnx_sentiment.predict_with_embeddings(texts)
    expected_sentiments, expected_embeddings = torch_sentiment.predict_with_embeddings(texts)
    np.testing.assert_allclose(embeddings, expected_embeddings, atol=1e-5)
    assert [s.label for s in sentiments] == [s.label for s in expected_sentiments]
    assert onnx_sentiment.predict_with_embeddings([])[1].shape == (0, torch_sentiment.encoder.dim)
    got, expected = onnx_sentiment.scores(texts), torch_sentiment.scores(texts)
    assert got.reasons.shape == (len(texts), len(torch_sentiment.reason_ids)) and got.churn.shape == (len(texts),)
    np.testing.assert_allclose(got.reasons, expected.reasons, atol=1e-5)
    np.testing.assert_allclose(got.churn, expected.churn, atol=1e-5)
    assert (onnx_sentiment.reason_threshold, onnx_sentiment.churn_threshold) == (
        torch_sentiment.reason_threshold, torch_sentiment.churn_threshold)


class RecordingSession:
    """The real session, recording the shape of every batch it is given."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, outputs, feeds):
        self.shapes.append(feeds["attention_mask"].shape)
        return self.session.run(outputs, feeds)


def test_long_batches_run_in_token_bounded_pieces_with_the_same_results(torch_sentiment, onnx_sentiment):
    texts = TEXTS * 8
    session = RecordingSession(onnx_sentiment.session)
    pieces = OnnxSentiment(session, torch_sentiment, onnx_sentiment.path, max_batch_tokens=64)
    got = pieces.scores(texts, with_embeddings=True)
    probabilities, embeddings = got.sentiment, got.embeddings
    assert sum(rows for rows, _ in session.shapes) == len(texts)
    assert all(rows == 1 or rows * tokens <= 64 for rows, tokens in session.shapes)
    assert any(rows > 1 for rows, _ in session.shapes) and any(tokens > 64 for _, tokens in session.shapes)
    wanted = torch_sentiment.scores(texts, with_embeddings=True)
    expected, expected_embeddings = wanted.sentiment, wanted.embeddings
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(embeddings, expected_embeddings, atol=1e-5)


def test_fingerprint_follows_the_weights(torch_sentiment):
    module = torch_sentiment.shared_pass()
    before = weights_fingerprint(module)
    classifier = torch_sentiment.head.classifier
    with torch.no_grad():
        classifier.bias[0] += 1e-3
        changed = weights_fingerprint(module)
        classifier.bias[0] -= 1e-3
    assert changed != before and weights_fingerprint(module) == before


def test_loaded_models_are_keyed_by_their_files(torch_sentiment, tmp_path):
    key = export_key(torch_sentiment)
    copy = tmp_path / "sentiment"
    shutil.copytree(BUILTIN_SENTIMENT_DIR, copy)
    same = TransformerSentiment.load(copy, torch_sentiment.encoder)
    assert export_key(same) == key
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "temperature": config["temperature"] + 0.5}))
    assert export_key(TransformerSentiment.load(copy, torch_sentiment.encoder)) != key
    in_memory = TransformerSentiment(torch_sentiment.encoder, torch_sentiment.head,
                                     reason_ids=torch_sentiment.reason_ids)
    assert export_key(in_memory) == weights_fingerprint(in_memory.shared_pass())


def test_a_half_written_export_is_replaced_and_a_finished_one_reused(torch_sentiment, tmp_path):
    fingerprint = export_key(torch_sentiment)
    target = tmp_path / "onnx" / f"sentiment-none-{fingerprint[:16]}"
    target.mkdir(parents=True)
    (target / MODEL_FILE).write_bytes(b"truncated by a crash")  # no marker: never finished

    path = ensure_onnx_model(torch_sentiment, tmp_path)
    assert path == target and json.loads((path / "cxm-export.json").read_text())["weights"] == fingerprint
    exported = (path / MODEL_FILE).stat().st_mtime_ns
    assert ensure_onnx_model(torch_sentiment, tmp_path) == path
    assert (path / MODEL_FILE).stat().st_mtime_ns == exported
    assert [p.name for p in (tmp_path / "onnx").iterdir() if not p.name.endswith(".lock")] == [target.name]
