"""One contract each: the stored analysis becomes the same churn frame as a library analysis, and
the API's analysis schema is the dataclass's ``to_dict()``."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from api.db.models import Customer, Feedback
from api.schemas import analysis as schemas
from api.services.analysis import model_versions
from api.services.risk import churn_tables
from churn.features import as_of, build_features
from churn.phrasebook import REASON_IDS
from churn.schema import TEXT_COLUMNS, validate_tables
from churn.text_features import annotate_tables
from nlp import results

TEXTS = ["I was charged twice and nobody answers. I am cancelling and moving to Telia.",
         "Great staff, but the invoice was wrong.", "Leveransen kom aldrig fram, jag byter till Tele2.",
         "Obsługa była bardzo miła, polecam.", "   ", None]
START = datetime(2026, 3, 2, tzinfo=timezone.utc)


def _stored(analyzer, settings) -> tuple[list[Customer], list[Feedback]]:
    """The texts as the service stores them: each analysis as ``to_dict()``, beside ``model_versions``."""
    versions = model_versions(settings, analyzer)
    analyses = analyzer.analyze(TEXTS)
    rows = [Feedback(id=i, external_id=f"f{i}", customer_id=f"c{i % 2}", kind="survey", channel="survey",
                     created_at=START + timedelta(days=i), text=text, survey={"survey_type": "relational"},
                     nps=i + 2, status="analysed",
                     analysis=None if a.error else a.to_dict(), model_versions=versions)
             for i, (text, a) in enumerate(zip(TEXTS, analyses))]
    customers = [Customer(id=f"c{k}", attributes={"signup_date": "2025-01-01"}, created_at=START) for k in (0, 1)]
    return customers, rows


def _library(rows: list[Feedback], reason_ids, analyzer):
    customers = pd.DataFrame({"customer_id": ["c0", "c1"], "signup_date": ["2025-01-01"] * 2})
    feedback = pd.DataFrame({"customer_id": [r.customer_id for r in rows], "feedback_id": [r.external_id for r in rows],
                             "timestamp": [r.created_at.isoformat() for r in rows], "channel": "survey",
                             "survey_type": "relational", "nps": [r.nps for r in rows], "text": TEXTS})
    tables = validate_tables(customers, feedback, pd.DataFrame(columns=["customer_id", "opened_at"]),
                             pd.DataFrame(columns=["customer_id", "churned_at"]), reason_ids=reason_ids)
    return annotate_tables(tables, analyzer, reason_ids=reason_ids)


@pytest.mark.parametrize("heads", ["all", "no reasons"])
def test_api_and_library_build_the_same_churn_frame_from_the_same_analyses(churn_analyzer, settings, heads):
    analyzer = churn_analyzer if heads == "all" else churn_analyzer.without("reasons")
    reason_ids = [r for r in REASON_IDS if r != "billing"]  # a churn model that never saw one taxonomy id
    customers, rows = _stored(analyzer, settings)
    api = churn_tables(customers, rows, reason_ids)
    library = _library(rows, reason_ids, analyzer)
    columns = ["customer_id", "timestamp", *TEXT_COLUMNS]
    pd.testing.assert_frame_equal(api.feedback[columns], library.feedback[columns])
    tags = api.feedback["text_reasons"]
    if heads == "all":
        assert tags.iloc[0] and "billing" not in tags.iloc[0] and tags.iloc[4] is None
        assert api.feedback["churn_intent"].iloc[0] == 1.0 and api.feedback["competitors"].iloc[2] == ()
    else:
        assert tags.isna().all()
    cutoff = pd.Timestamp("2026-04-01")
    pd.testing.assert_frame_equal(build_features(as_of(api, cutoff), reason_ids),
                                  build_features(as_of(library, cutoff), reason_ids))


PUBLIC = {results.Analysis: schemas.AnalysisPublic, results.Sentiment: schemas.SentimentPublic,
          results.SentenceSentiment: schemas.SentenceSentimentPublic, results.ReasonScore: schemas.ReasonPublic,
          results.TopicAssignment: schemas.TopicPublic, results.Signals: schemas.SignalsPublic}


def _as_public(hint):
    """The dataclass type hint with every result dataclass replaced by its public schema."""
    if hint in PUBLIC:
        return PUBLIC[hint]
    args = tuple(_as_public(a) for a in typing.get_args(hint))
    if not args:
        return hint
    origin = typing.get_origin(hint)
    return typing.Union[args] if origin in (typing.Union, types.UnionType) else origin[args]


@pytest.mark.parametrize("dataclass", list(PUBLIC), ids=lambda d: d.__name__)
def test_the_public_schema_has_exactly_the_dataclass_fields(dataclass):
    hints = typing.get_type_hints(dataclass)
    fields = PUBLIC[dataclass].model_fields
    assert set(fields) == {f.name for f in dataclasses.fields(dataclass)}
    for name, field in fields.items():
        assert field.annotation == _as_public(hints[name]), name


def test_every_analysis_validates_as_the_public_schema_unchanged(churn_analyzer):
    for analysis in churn_analyzer.analyze(TEXTS):
        assert schemas.AnalysisPublic.model_validate(analysis.to_dict()).model_dump() == analysis.to_dict()
