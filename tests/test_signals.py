"""CX signals in English, Swedish and Polish: churn intent (with negation), competitors, effort, urgency."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nlp.analyzer import FeedbackAnalyzer
from nlp.pipeline import build_reason_tagger, build_signal_detector
from nlp.signals import RuleSignalDetector


@pytest.fixture(scope="session")
def detector():
    return RuleSignalDetector(["Telia", "Tele2", "Orange", "EE"], own_brands=["Acme"])


def detect(detector, text, lang):
    return detector.detect([text], [lang])[0]


@pytest.mark.parametrize(
    ("text", "lang", "churn"),
    [
        ("I am cancelling my contract at the end of the month", "en", True),
        ("I'm switching to another provider, you are too expensive", "en", True),
        ("I won't be renewing my subscription", "en", True),
        ("I am not cancelling, I just want the bill fixed", "en", False),
        ("My flight was cancelled and nobody told me", "en", False),
        ("Jag säger upp mitt abonnemang", "sv", True),
        ("Vi har sagt upp avtalet och byter till en annan operatör", "sv", True),
        ("Jag säger inte upp abonnemanget, men fixa fakturan", "sv", False),
        ("Rezygnuję z waszych usług", "pl", True),
        ("Wypowiadam umowę i przechodzę do konkurencji", "pl", True),
        ("Nie rezygnuję, ale proszę poprawić fakturę", "pl", False),
        ("Great service, thank you", "en", False),
    ],
)
def test_churn_intent_with_negation(detector, text, lang, churn):
    assert detect(detector, text, lang).churn_intent is churn


@pytest.mark.parametrize(
    ("text", "lang"),
    [("I had to call three times before anyone helped", "en"),
     ("Jag fick ringa tre gånger innan någon hjälpte mig", "sv"),
     ("Musiałem dzwonić trzy razy, zanim ktoś pomógł", "pl")],
)
def test_effort_is_high_for_repeated_contact_and_low_otherwise(detector, text, lang):
    assert detect(detector, text, lang).effort >= 0.5
    assert detect(detector, "The installation went smoothly", "en").effort == 0.0


@pytest.mark.parametrize(
    ("text", "lang"),
    [("URGENT: no internet for three days, fix it immediately!!", "en"),
     ("Brådskande, vi har varit utan internet i tre dagar, åtgärda omedelbart", "sv"),
     ("Pilne! Jestem bez internetu od trzech dni, proszę naprawić natychmiast", "pl")],
)
def test_urgency_is_in_unit_range_and_ranks_urgent_texts_higher(detector, text, lang):
    urgent = detect(detector, text, lang).urgency
    calm = detect(detector, "Some time next month it would be nice to get a newsletter", "en").urgency
    assert 0.5 <= urgent <= 1.0 and calm < 0.3


def test_competitors_from_the_list_and_from_english_entities(detector):
    texts = ["Jag byter till Telia", "Przechodzę do Orange, mają lepszą ofertę", "EE were cheaper",
             "Verizon offered me a much better deal than Acme", "The sky is blue"]
    found = [s.competitors for s in detector.detect(texts, ["sv", "pl", "en", "en", "en"])]
    assert found[:3] == [["Telia"], ["Orange"], ["EE"]]
    assert "Verizon" in found[3] and "Acme" not in found[3]
    assert found[4] == []


def test_detector_rejects_mismatched_languages(detector):
    with pytest.raises(ValueError, match="languages"):
        detector.detect(["a", "b"], ["en"])


def test_analyzer_outputs_reasons_and_signals(analyzer_config, encoder, language_detector):
    config = replace(analyzer_config, competitors=("Telia",), competitor_ner=False)
    analyzer = FeedbackAnalyzer(encoder, language_detector, reasons=build_reason_tagger(config, encoder),
                                signals=build_signal_detector(config))
    result = analyzer.analyze(["I was charged twice, I'm cancelling and moving to Telia"])[0]
    assert result.reasons and result.reasons[0].id == "billing"
    assert result.signals.churn_intent and result.signals.competitors == ["Telia"]
    out = result.to_dict()
    assert out["signals"]["churn_intent"] is True and out["reasons"][0]["id"] == "billing"


def test_learned_churn_probability_joins_the_rules_at_the_validation_threshold(detector):
    texts = ["Thanks, all good.", "I am cancelling my contract", "I'm not switching to another provider",
             "Think I'm off to greener pastures"]
    signals = detector.detect(texts, ["en"] * 4, churn_probability=[0.1, 0.05, 0.9, 0.3], churn_threshold=0.2)
    scores = [s.churn_intent_score for s in signals]
    # The 0.2 threshold maps to 0.5 (0.1 -> 0.25, 0.3 -> 0.5 + 0.5 * 0.1 / 0.8); a stated phrase lifts
    # a low probability to the rule floor; a phrase found only under a negation caps a high one.
    assert scores == [0.25, 0.75, 0.25, pytest.approx(0.5625)]
    assert [s.churn_intent for s in signals] == [False, True, False, True]
    assert [s.churn_intent_score for s in detector.detect(texts[:2], ["en"] * 2)] == [0.0, 1.0]
    with pytest.raises(ValueError, match="2 texts but 1 churn probabilities"):
        detector.detect(texts[:2], ["en"] * 2, churn_probability=[0.5])
