import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from api.cli import app
from nlp.analyzer import FeedbackAnalyzer
from nlp.sentences import SpacySentenceSplitter
from nlp.sentiment_model import BUILTIN_SENTIMENT_DIR, SentimentModelError, TransformerSentiment
from nlp.sentiment_training import TextModelTrainer

runner = CliRunner()

OBVIOUS = [
    ("The staff were wonderful and fixed my problem right away, thank you!", "positive"),
    ("Terrible service. My flight was cancelled and nobody answered the phone for hours.", "negative"),
    ("Fantastisk service och mycket trevlig personal, rekommenderas varmt!", "positive"),
    ("Väldigt dålig service, de svarade aldrig och fakturan var fel.", "negative"),
    ("Świetny sprzedawca, szybka wysyłka, wszystko zgodne z opisem. Polecam!", "positive"),
    ("Fatalna obsługa, towar przyszedł uszkodzony i nikt nie odpowiada. Nie polecam.", "negative"),
]


@pytest.fixture(scope="module")
def sentiment(encoder):
    return TransformerSentiment.load(BUILTIN_SENTIMENT_DIR, encoder)


@pytest.fixture(scope="module")
def analyzer(encoder, language_detector, sentiment):
    return FeedbackAnalyzer(encoder, language_detector, sentiment=sentiment, sentence_splitter=SpacySentenceSplitter())


def test_shipped_artefact_is_small_and_safe():
    files = sorted(p.name for p in BUILTIN_SENTIMENT_DIR.iterdir())
    assert files == ["config.json", "model.safetensors"]
    assert sum(p.stat().st_size for p in BUILTIN_SENTIMENT_DIR.iterdir()) < 30_000_000


def test_shipped_model_gets_obvious_cases_right_in_three_languages(sentiment):
    predicted = [s.label for s in sentiment.predict([text for text, _ in OBVIOUS])]
    assert predicted == [label for _, label in OBVIOUS]


def test_probabilities_are_a_distribution_and_score_is_their_difference(sentiment):
    texts = [text for text, _ in OBVIOUS] + ["Flight 123 leaves at 9.", "ok", "x" * 5000]
    for s in sentiment.predict(texts):
        p = s.probabilities
        assert list(p) == ["negative", "neutral", "positive"]
        assert sum(p.values()) == pytest.approx(1.0, abs=1e-3)
        assert -1.0 <= s.score <= 1.0
        assert s.score == pytest.approx(p["positive"] - p["negative"], abs=1e-3)
        assert s.label == max(p, key=p.get)
    assert sentiment.predict([]) == []


def test_very_long_text_is_truncated_not_an_error(sentiment):
    long_text = "The service was awful and slow. " * 600
    (s,) = sentiment.predict([long_text])
    assert s.label == "negative"


def test_shared_pass_gives_the_encoders_embeddings_and_the_same_sentiment(sentiment, encoder):
    texts = [text for text, _ in OBVIOUS] + ["ok", "The service was awful and slow. " * 200]
    sentiments, embeddings = sentiment.predict_with_embeddings(texts)
    np.testing.assert_allclose(embeddings, encoder.encode(texts), atol=1e-5)
    assert sentiments == sentiment.predict(texts)
    empty_sentiments, empty_embeddings = sentiment.predict_with_embeddings([])
    assert empty_sentiments == [] and empty_embeddings.shape == (0, encoder.dim)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_int8_analyzer_still_gets_the_obvious_cases_right(analyzer_config, backend, churn_analyzer):
    quantized = FeedbackAnalyzer.from_config(replace(analyzer_config, quantize="int8", backend=backend))
    if backend == "torch":
        modules = quantized.encoder.model.modules()
        assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in modules)
    else:
        import onnx

        graph = onnx.load(str(quantized.sentiment.path), load_external_data=False).graph
        assert "MatMulInteger" in {node.op_type for node in graph.node}
    results = quantized.analyze([text for text, _ in OBVIOUS])
    assert [r.sentiment.label for r in results] == [label for _, label in OBVIOUS]
    # Where full precision is confident of a reason, int8 keeps it first.
    for fp32, int8 in zip(churn_analyzer.analyze([text for text, _ in OBVIOUS]), results):
        if fp32.reasons and fp32.reasons[0].score >= 0.9:
            assert int8.reasons and int8.reasons[0].id == fp32.reasons[0].id


def test_mixed_sentence_gives_a_positive_and_a_negative_clause(analyzer):
    (result,) = analyzer.analyze(["Great staff, but the invoice was wrong."])
    assert [(s.text, s.sentiment.label) for s in result.sentences] == [
        ("Great staff", "positive"), ("but the invoice was wrong.", "negative"),
    ]
    assert result.mixed


def test_sentence_offsets_index_the_original_text(analyzer):
    text = "  Bra personal men fakturan var fel.  "
    (result,) = analyzer.analyze([text])
    assert result.language == "sv"
    assert [text[s.start : s.end] for s in result.sentences] == ["Bra personal", "men fakturan var fel."]


def tiny_corpus():
    texts = ["great service, thank you", "awful, never again", "the parcel arrived on monday",
             "fantastisk personal", "hemskt dåligt", "öppet klockan nio",
             "świetny sprzedawca", "fatalna obsługa", "paczka przyszła we wtorek",
             "I am cancelling my contract", "jag säger upp mitt abonnemang", "rezygnuję z usługi"]
    sentiment = ["positive", "negative", "neutral"] * 3 + ["negative", "", "negative"]
    reasons = [["customer_support"], None, ["delivery"], [], None, None, [], ["customer_support"], ["delivery"],
               [], None, []]
    churn = [0, -1, 0, 0, 0, -1, 0, 0, 0, 1, 1, 1]
    valid = [False] * 9 + [True, False, True]
    return texts, sentiment, reasons, churn, valid


REASON_IDS = ["customer_support", "delivery"]


def test_trainer_save_load_round_trip_predicts_the_same(encoder, tmp_path):
    texts, sentiment, reasons, churn, valid = tiny_corpus()
    trainer = TextModelTrainer(encoder, REASON_IDS, split_layer=10, epochs=2, batch_size=4, max_length=32)
    in_memory = trainer.fit(texts, sentiment, reasons, churn, valid=valid).model_
    in_memory.save(tmp_path / "model")
    loaded = TransformerSentiment.load(tmp_path / "model", encoder)
    loaded.save(tmp_path / "resaved")
    again = TransformerSentiment.load(tmp_path / "resaved", encoder)
    probe = texts + ["Helt okej.", "Nie wiem."]
    expected, got = in_memory.scores(probe), loaded.scores(probe)
    np.testing.assert_allclose(got.sentiment, expected.sentiment, atol=2e-3)
    np.testing.assert_allclose(got.reasons, expected.reasons, atol=2e-3)
    np.testing.assert_allclose(got.churn, expected.churn, atol=2e-3)
    np.testing.assert_array_equal(loaded.predict_proba(probe), again.predict_proba(probe))
    assert got.reasons.shape == (len(probe), 2) and got.churn.shape == (len(probe),)
    assert [s.label for s in loaded.predict(probe)] == [s.label for s in in_memory.predict(probe)]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["split_layer"] == 10 and config["labels"] == ["negative", "neutral", "positive"]
    assert config["reason_ids"] == REASON_IDS and 0 < config["churn_threshold"] < 1
    assert [r["epoch"] for r in config["epoch_reports"]] == [1, 2]
    assert loaded.reason_ids == tuple(REASON_IDS) and loaded.churn_threshold == config["churn_threshold"]
    assert json.loads((tmp_path / "resaved" / "config.json").read_text()) == config  # the report travels along


def test_trainer_learns_only_from_the_labels_a_row_has(encoder):
    """A row without a sentiment, reasons or churn label adds no loss for that head."""
    texts, sentiment, reasons, churn, valid = tiny_corpus()
    trainer = TextModelTrainer(encoder, REASON_IDS, split_layer=11, epochs=1, batch_size=4, max_length=32)
    masked = trainer.fit(["ok"] * 2 + texts, ["", ""] + sentiment, [None, None] + reasons, [-1, -1] + churn,
                         valid=[False, False] + valid)
    assert masked.history_ and all(np.isfinite(masked.history_))


def test_trainer_rejects_unknown_labels(encoder):
    trainer = TextModelTrainer(encoder, REASON_IDS)
    with pytest.raises(ValueError, match="unknown sentiment labels"):
        trainer.fit(["fine", "ok"], ["good", "neutral"], [None, None], [0, 0], valid=[False, True])
    with pytest.raises(ValueError, match="unknown reason id 'price'"):
        trainer.fit(["fine", "ok"], ["positive", "neutral"], [["price"], None], [0, 0], valid=[False, True])
    with pytest.raises(ValueError, match="churn labels must be"):
        trainer.fit(["fine", "ok"], ["positive", "neutral"], [None, None], [2, 0], valid=[False, True])
    with pytest.raises(ValueError, match="training rows and validation rows"):
        trainer.fit(["fine", "ok"], ["positive", "neutral"], [None, None], [0, 0], valid=[False, False])


def copy_shipped(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(BUILTIN_SENTIMENT_DIR, target)
    return target


def test_missing_files_give_a_clear_error(encoder, tmp_path):
    with pytest.raises(SentimentModelError, match="needs config.json and model.safetensors"):
        TransformerSentiment.load(tmp_path, encoder)


def test_wrong_format_gives_a_clear_error(encoder, tmp_path):
    target = copy_shipped(tmp_path)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "format": "pickle"}))
    with pytest.raises(SentimentModelError, match="is not a cxm-text-model/2 text model"):
        TransformerSentiment.load(target, encoder)
    (target / "config.json").write_text("{not json")
    with pytest.raises(SentimentModelError, match="not valid JSON"):
        TransformerSentiment.load(target, encoder)


def test_wrong_shapes_give_a_clear_error(encoder, tmp_path):
    target = copy_shipped(tmp_path)
    state = load_file(str(target / "model.safetensors"))
    state["classifier.weight"] = torch.zeros(3, 100)
    save_file(state, str(target / "model.safetensors"))
    with pytest.raises(SentimentModelError, match="does not fit"):
        TransformerSentiment.load(target, encoder)


def test_encoder_mismatch_and_corrupt_weights_give_clear_errors(encoder, tmp_path):
    target = copy_shipped(tmp_path)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "hidden_size": 768}))
    with pytest.raises(SentimentModelError, match="768-d encoder"):
        TransformerSentiment.load(target, encoder)
    (target / "config.json").write_text(json.dumps(config))
    (target / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(SentimentModelError, match="not a readable safetensors"):
        TransformerSentiment.load(target, encoder)


ROWS = [
    {"id": "1", "channel": "survey", "text": "Great staff, but the invoice was wrong."},
    {"id": "2", "channel": "ticket", "text": ""},
    {"id": "3", "channel": "social", "text": "Fantastisk service, rekommenderas!"},
    {"id": "4", "channel": "survey", "text": "   "},
    {"id": "5", "channel": "review", "text": "Fatalna obsługa, nie polecam."},
]


def check_rows(written):
    assert [(w["id"], w["channel"]) for w in written] == [(r["id"], r["channel"]) for r in ROWS]
    assert [w["language"] for w in written] == ["en", None, "sv", None, "pl"]
    for w in (written[1], written[3]):
        assert w["sentiment"] is None and w["sentences"] == [] and w["error"] == "empty text"
    assert written[2]["sentiment"]["label"] == "positive" and written[4]["sentiment"]["label"] == "negative"
    first = written[0]
    assert first["error"] is None and first["mixed"] is True
    assert set(first["sentiment"]) == {"label", "score", "probabilities"}
    assert [(s["text"], s["start"], s["end"], s["sentiment"]["label"]) for s in first["sentences"]] == [
        ("Great staff", 0, 11, "positive"), ("but the invoice was wrong.", 13, 39, "negative"),
    ]


def test_analyze_cli_end_to_end_on_csv(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,channel,text\n" + "".join(f'{r["id"]},{r["channel"]},"{r["text"]}"\n' for r in ROWS))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["analyze", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "analysed 5 rows (2 without a result)" in result.output
    check_rows([json.loads(line) for line in out.read_text().splitlines()])


def test_jsonl_input_gives_the_same_rows(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["analyze", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    check_rows([json.loads(line) for line in out.read_text().splitlines()])


def test_analyze_cli_on_jsonl_passes_columns_through_unchanged(tmp_path):
    source = tmp_path / "in.jsonl"
    records = [
        {"id": 7, "created_at": 1764000000, "language": "pl", "text": "Great staff, but the invoice was wrong."},
        {"id": None, "created_at": 1764000001, "language": "sv", "text": "   "},
        {"id": 9, "created_at": 1764000002, "language": "en", "text": 12345},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["analyze", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(w["id"], w["created_at"], w["input_language"]) for w in written] == [
        (r["id"], r["created_at"], r["language"]) for r in records]
    first = written[0]
    assert first["language"] == "en" and first["mixed"] is True
    assert {"sentiment", "sentences", "reasons", "signals"} <= set(first)
    assert first["reasons"] and set(first["signals"]) >= {"churn_intent", "competitors", "effort", "urgency"}
    assert [w["error"] for w in written] == [None, "empty text", "text is not a string"]


def test_train_cli_without_data_fails_clearly(tmp_path):
    result = runner.invoke(app, ["train", "sentiment", "--data-dir", str(tmp_path), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "training split not found" in result.output
