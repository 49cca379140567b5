"""The shipped text model on the failure classes that made issue #15, in English, Swedish and Polish.

Every example here was written for this file (not taken from the training or evaluation sets in
``data/cx``) and labelled before the model saw it. A class allows at most ``ALLOWED_MISSES`` wrong
rows, so one borderline row cannot turn the suite red, but a regression on the class does.

Classes the shipped model does not yet pass are strict ``xfail`` with the measured misses: they
document the gap (docs/model_cards/sentiment.md) and turn red the day a model fixes them, so the
marker has to go.
"""

from __future__ import annotations

import pytest

ALLOWED_MISSES = 1

EXPLICIT_CHURN = [
    "Right, I'm done. Cancelling the whole package tomorrow, you can keep your excuses.",
    "Please close my account and confirm when it's done.",
    "Telia offered me half the price, so why would I stay with you?",
    "Det räcker nu, jag säger upp avtalet i morgon.",
    "Vill avsluta mitt konto hos er, hur gör jag?",
    "Tre erbjöd mig samma sak för halva priset, varför skulle jag stanna?",
    "Mam dość, wypowiadam umowę jeszcze w tym miesiącu.",
    "Proszę o zamknięcie mojego konta.",
    "Play daje mi to samo za połowę ceny, po co mam u was zostawać?",
]
NOT_CHURN = [
    "I'm not going to cancel, but please fix the app login.",
    "I'd like to cancel my order from yesterday, I picked the wrong size.",
    "We're moving to Leeds next month, can you move the broadband to the new address?",
    "Jag tänker inte säga upp abonnemanget, men fakturan måste rättas.",
    "Jag vill avboka teknikerbesöket på fredag, jag har löst det själv.",
    "Vi flyttar i juni, kan ni flytta bredbandet till den nya adressen?",
    "Nie rezygnuję z usług, ale proszę poprawić fakturę.",
    "Chcę anulować zamówienie nr 5521, pomyliłem kolor.",
    "Przeprowadzam się do Gdańska, czy internet może przejść na nowy adres?",
]
CANCELLING_FOR_A_COMPETITOR = [
    "Cancelling today. Vodafone gave me a much better price.",
    "Jag säger upp mitt abonnemang, Telenor erbjöd mig ett bättre pris.",
    "Rezygnuję, Orange zaproponował mi lepszą cenę.",
]
NEUTRAL = [
    "When does my new card arrive?",
    "It does what it should, nothing special.",
    "Fine, no better or worse than I expected.",
    "När kommer min nya router?",
    "Den gör vad den ska, inget speciellt.",
    "Helt okej, varken bättre eller sämre än väntat.",
    "Kiedy przyjdzie moja nowa karta?",
    "Działa jak powinno, nic szczególnego.",
    "W porządku, ani lepiej ani gorzej niż się spodziewałam.",
]
PRAISE_WITH_A_NEGATIVE_NOUN = [
    "Sorted my double-charge problem in five minutes, brilliant.",
    "The technician fixed the broken router in no time, legend!",
    "Anna löste mitt fakturaproblem direkt, tack så mycket!",
    "Teknikern lagade felet på en kvart, toppen!",
    "Pan z infolinii od ręki rozwiązał problem z fakturą, dziękuję!",
    "Serwisant naprawił awarię w kwadrans, super!",
]
PROMOTER_REASONS = [
    ("The support guy on the phone was so patient and helpful, thank you!", "customer_support"),
    ("Courier came a day early and the parcel was perfectly packed.", "delivery"),
    ("Supporten var supertrevlig och hjälpte mig direkt.", "customer_support"),
    ("Paketet kom dagen efter beställningen, snabb leverans!", "delivery"),
    ("Konsultantka na czacie była bardzo pomocna i miła.", "customer_support"),
    ("Kurier przyjechał dzień wcześniej, paczka w idealnym stanie.", "delivery"),
]
MIXED = [
    ("The staff were lovely, but the bill was wrong again.", ("positive", "negative")),
    ("Personalen var trevlig men fakturan var fel igen.", ("positive", "negative")),
    ("Obsługa była miła, ale rachunek znowu był błędny.", ("positive", "negative")),
]


def misses(predicted: list, expected: list) -> list:
    return [(p, e) for p, e in zip(predicted, expected) if p != e]


@pytest.fixture(scope="module")
def analyze(churn_analyzer):
    return churn_analyzer.analyze


KNOWN_GAP = pytest.mark.xfail(strict=True, reason="known gap of the shipped text model (see its model card)")


@KNOWN_GAP  # misses: 2 of 9 stated (sv/pl "X offers half the price, why stay?"), 3 of 9 hard negatives
def test_explicit_churn_intent_is_found_and_hard_negatives_are_not(analyze):
    results = analyze(EXPLICIT_CHURN + NOT_CHURN)
    predicted = [r.signals.churn_intent for r in results]
    expected = [True] * len(EXPLICIT_CHURN) + [False] * len(NOT_CHURN)
    assert len(misses(predicted[: len(EXPLICIT_CHURN)], expected[: len(EXPLICIT_CHURN)])) <= ALLOWED_MISSES
    assert len(misses(predicted[len(EXPLICIT_CHURN) :], expected[len(EXPLICIT_CHURN) :])) <= ALLOWED_MISSES
    for r, intent in zip(results, predicted):
        assert 0.0 <= r.signals.churn_intent_score <= 1.0
        assert intent == (r.signals.churn_intent_score >= 0.5)


@KNOWN_GAP  # the Swedish row reads positive
def test_cancelling_for_a_competitor_reads_negative(analyze):
    labels = [r.sentiment.label for r in analyze(CANCELLING_FOR_A_COMPETITOR)]
    assert labels == ["negative"] * len(CANCELLING_FOR_A_COMPETITOR)


def test_neutral_questions_and_lukewarm_answers_read_neutral(analyze):
    labels = [r.sentiment.label for r in analyze(NEUTRAL)]
    assert len(misses(labels, ["neutral"] * len(NEUTRAL))) <= ALLOWED_MISSES, labels


def test_praise_that_names_a_problem_reads_positive(analyze):
    labels = [r.sentiment.label for r in analyze(PRAISE_WITH_A_NEGATIVE_NOUN)]
    assert len(misses(labels, ["positive"] * len(PRAISE_WITH_A_NEGATIVE_NOUN))) <= ALLOWED_MISSES, labels


def test_promoter_reasons_land_on_what_was_praised(analyze):
    results = analyze([text for text, _ in PROMOTER_REASONS])
    top = [r.reasons[0].id if r.reasons else None for r in results]
    assert len(misses(top, [reason for _, reason in PROMOTER_REASONS])) <= ALLOWED_MISSES, top
    assert all(r.sentiment.label == "positive" for r in results)


@KNOWN_GAP  # the Swedish complaint clause reads neutral
def test_a_mixed_text_gets_a_positive_and_a_negative_sentence(analyze):
    for result, (_, expected) in zip(analyze([text for text, _ in MIXED]), MIXED):
        assert tuple(s.sentiment.label for s in result.sentences) == expected
        assert result.mixed
