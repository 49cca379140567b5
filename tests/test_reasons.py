"""NPS+ reasons: the taxonomy file, zero-shot tagging in en/sv/pl, and the few-shot head."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks
from typer.testing import CliRunner

from api.cli import app
from nlp.reason_tagger import HEAD_CONFIG, HEAD_WEIGHTS, FewShotReasonHead
from nlp.pipeline import build_reason_tagger, build_sentiment
from nlp.reason_taxonomy import TaxonomyError, load_taxonomy, parse_taxonomy, save_taxonomy

STABLE_IDS = ["price", "billing", "delivery", "product_quality", "customer_support", "usability",
              "reliability", "features", "competitor", "other"]

OBVIOUS = [
    ("I was charged twice on my last invoice", "billing"),
    ("Jag har fått en felaktig faktura och dubbeldebiterats", "billing"),
    ("Na fakturze naliczono mi podwójną opłatę", "billing"),
    ("My parcel never arrived, the delivery is two weeks late", "delivery"),
    ("Leveransen kom aldrig, paketet är försenat", "delivery"),
    ("Przesyłka nie dotarła, dostawa spóźniona o tydzień", "delivery"),
]


@pytest.fixture(scope="session")
def zero_shot(analyzer_config, encoder):
    return build_reason_tagger(analyzer_config, encoder)


def test_default_taxonomy_has_stable_ids_in_three_languages():
    taxonomy = load_taxonomy()
    assert taxonomy.ids == STABLE_IDS
    for reason in taxonomy.reasons:
        assert {"en", "sv", "pl"} <= set(reason.label) and {"en", "sv", "pl"} <= set(reason.description)


def test_obvious_billing_and_delivery_rank_first_in_every_language(zero_shot, encoder):
    tagged = zero_shot.tag(encoder.encode([t for t, _ in OBVIOUS]))
    assert [scores[0].id for scores in tagged] == [want for _, want in OBVIOUS]
    for scores in tagged:
        assert [s.score for s in scores] == sorted((s.score for s in scores), reverse=True)
        assert all(0 <= s.score <= 1 for s in scores)


def test_user_taxonomy_with_a_new_reason_works_zero_shot(tmp_path, analyzer_config, encoder):
    data = load_taxonomy().to_dict()
    data["reasons"] = [r for r in data["reasons"] if r["id"] in ("billing", "delivery", "customer_support")]
    data["reasons"].insert(0, {
        "id": "parking",
        "label": {"en": "Parking", "sv": "Parkering", "pl": "Parking"},
        "description": {"en": "no parking spaces at the store, parking fees",
                        "sv": "inga parkeringsplatser vid butiken, parkeringsavgifter",
                        "pl": "brak miejsc parkingowych przy sklepie, opłaty za parking"},
    })
    path = tmp_path / "taxonomy.yaml"
    save_taxonomy(parse_taxonomy(json.dumps(data)), path)
    tagger = build_reason_tagger(replace(analyzer_config, reason_taxonomy=path), encoder)
    assert tagger.ids == ["parking", "billing", "delivery", "customer_support"]
    texts = ["There was nowhere to park my car", "Det fanns ingenstans att parkera bilen",
             "Nie było gdzie zaparkować samochodu"]
    assert [r[0].id for r in tagger.tag(encoder.encode(texts))] == ["parking"] * 3


def test_text_model_head_scores_known_ids_and_zero_shot_the_users_new_ones(tmp_path, analyzer_config, encoder,
                                                                           language_detector):
    """A user's taxonomy: a new id is tagged zero-shot, known ids by the head, dropped ids never."""
    from nlp.analyzer import FeedbackAnalyzer
    from nlp.reason_tagger import HeadReasonTagger

    data = load_taxonomy().to_dict()
    data["reasons"] = [r for r in data["reasons"] if r["id"] in ("billing", "delivery")]
    data["reasons"].append({
        "id": "parking", "label": {"en": "Parking", "sv": "Parkering", "pl": "Parking"},
        "description": {"en": "no parking spaces at the store, parking fees",
                        "sv": "inga parkeringsplatser vid butiken, parkeringsavgifter",
                        "pl": "brak miejsc parkingowych przy sklepie, opłaty za parking"},
    })
    path = tmp_path / "taxonomy.yaml"
    save_taxonomy(parse_taxonomy(json.dumps(data)), path)
    text_model = build_sentiment(analyzer_config, encoder)
    tagger = build_reason_tagger(replace(analyzer_config, reason_taxonomy=path), encoder, text_model)
    assert isinstance(tagger, HeadReasonTagger) and tagger.unknown == ["parking"]
    analyzer = FeedbackAnalyzer(encoder, language_detector, sentiment=text_model, reasons=tagger)
    texts = ["There was nowhere to park my car at your store", "Nie było gdzie zaparkować przy sklepie",
             "I was charged twice on my last invoice", "Paketet kom aldrig fram"]
    tagged = [[r.id for r in a.reasons] for a in analyzer.analyze(texts)]
    assert [t[0] if t else None for t in tagged] == ["parking", "parking", "billing", "delivery"]
    assert all(set(t) <= {"billing", "delivery", "parking"} for t in tagged)

    default = build_reason_tagger(analyzer_config, encoder, text_model)
    assert isinstance(default, HeadReasonTagger) and default.zero_shot is None  # every default id has a head


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reasons:\n  - id: price\n    label: {en: Price\n", "line"),
        ("reasons:\n  - id: Price\n    label: {en: Price}\n    description: {en: too dear}\n", "line 2"),
        ("reasons:\n  - id: price\n    label: {sv: Pris}\n    description: {en: too dear}\n", "needs an 'en' entry"),
        ("reasons:\n  - id: price\n    label: {en: P}\n    description: {en: d}\n"
         "  - id: price\n    label: {en: P}\n    description: {en: d}\n", r"line 5: duplicate reason id 'price' \(first defined on line 2\)"),
        ("reasons:\n  - id: price\n    label: {en: P}\n    descripton: {en: d}\n", "line 4: unknown key 'descripton'"),
        ("", "empty"),
    ],
)
def test_bad_taxonomy_yaml_fails_naming_the_line(text, message):
    with pytest.raises(TaxonomyError, match=message):
        parse_taxonomy(text, source="mine.yaml")


def test_missing_taxonomy_file_is_a_clear_error(tmp_path):
    with pytest.raises(TaxonomyError, match="no such taxonomy file"):
        load_taxonomy(tmp_path / "nope.yaml")


def test_zero_shot_rejects_embeddings_of_the_wrong_shape(zero_shot):
    with pytest.raises(ValueError, match="dimension"):
        zero_shot.tag(np.zeros((2, 10), dtype=np.float32))


TRAIN = [
    ("The invoice amount is wrong", "billing"), ("I was billed twice", "billing"),
    ("Refund still not paid back", "billing"), ("Unexpected fee on my bill", "billing"),
    ("Fakturan är fel", "billing"), ("Błędny rachunek za ten miesiąc", "billing"),
    ("Package arrived a week late", "delivery"), ("The courier lost my parcel", "delivery"),
    ("Order never shipped", "delivery"), ("Delivery was delayed again", "delivery"),
    ("Paketet kom aldrig", "delivery"), ("Kurier zgubił moją paczkę", "delivery"),
    ("The agent hung up on me", "customer_support"), ("Support never answers the phone", "customer_support"),
    ("Rude staff in the call centre", "customer_support"), ("Waited an hour to talk to someone", "customer_support"),
    ("Kundtjänst var otrevlig", "customer_support"), ("Konsultant był niemiły", "customer_support"),
]


def test_few_shot_head_fit_save_load_round_trip(tmp_path, encoder):
    X = encoder.encode([t for t, _ in TRAIN])
    head = FewShotReasonHead().fit(X, [y for _, y in TRAIN])
    head.save(tmp_path / "head")
    assert {p.name for p in (tmp_path / "head").iterdir()} == {HEAD_WEIGHTS, HEAD_CONFIG}
    loaded = FewShotReasonHead.load(tmp_path / "head")
    probe = encoder.encode(["My bill has a charge I do not recognise", "Min leverans är sen",
                            "Nikt z obsługi klienta nie odpowiada"])
    np.testing.assert_allclose(loaded.predict_proba(probe), head.predict_proba(probe), atol=1e-6)
    assert loaded.predict(probe).tolist() == ["billing", "delivery", "customer_support"]
    assert [r[0].id for r in loaded.tag(probe)] == ["billing", "delivery", "customer_support"]


@parametrize_with_checks([FewShotReasonHead()])
def test_few_shot_head_is_a_scikit_learn_classifier(estimator, check):
    check(estimator)


def test_few_shot_head_is_not_fitted_until_fit():
    with pytest.raises(NotFittedError):
        FewShotReasonHead().predict(np.zeros((1, 4), dtype=np.float32))


def test_multi_label_head_and_cli_training(tmp_path, analyzer_config, encoder):
    rows = [(t, y) for t, y in TRAIN] + [("Charged twice and the parcel is late", "billing;delivery"),
                                         ("Wrong bill and rude support", "billing|customer_support")]
    path = tmp_path / "labelled.csv"
    path.write_text("text,reasons\n" + "".join(f'"{t}","{y}"\n' for t, y in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "reasons", str(path), "-o", str(tmp_path / "head")])
    assert result.exit_code == 0, result.output
    head = build_reason_tagger(replace(analyzer_config, reason_model=tmp_path / "head"), encoder)
    assert head.multi_label_ and set(head.classes_) == {"billing", "delivery", "customer_support"}
    probe = encoder.encode(["I was billed twice for one month"])
    tagged = head.tag(probe)
    assert tagged[0][0].id == "billing"
    assert head.predict(probe).tolist() == [[int(c in {t.id for t in tagged[0]}) for c in head.classes_]]


def test_cli_training_rejects_ids_outside_the_taxonomy(tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text("text,reasons\n" + "".join(f'"{t}","{y}"\n' for t, y in TRAIN[:5]) + '"x","parking"\n')
    result = CliRunner().invoke(app, ["train", "reasons", str(path), "-o", str(tmp_path / "head")])
    assert result.exit_code == 2 and "unknown reason ids ['parking']" in result.output
