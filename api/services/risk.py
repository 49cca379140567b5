"""Churn risk per customer from stored feedback, and ``flag``: re-score, open cases above the threshold.

The stored rows become the four ``churn.schema`` tables, so the API scores with exactly the
features the churn model was trained on (``churn.scoring``).

As-of rule: features are computed as of the request's ``as_of``, else as of the latest event
stored (feedback, ticket response or resolution), never later than now. A live service's latest
event is minutes old; a historical import is scored as of its own end, so recency features mean
what they meant in training however old the data is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import queries
from api.db.models import Case, CaseEvent, ChurnOutcome, Customer, Feedback, RiskScore
from api.errors import ApiError
from api.json_safe import plain
from api.schemas.feedback import EARLIEST, segment_date
from api.services.analysis import stored_heads
from churn.schema import CUSTOMER_SEGMENTS, ChurnTables, validate_tables
from churn.scoring import features_for, reason_ids_of, score_at
from churn.text_features import text_cells
from nlp.results import Analysis
from nlp.signals import churn_intent

CHANNEL_OF_KIND = {"survey": "survey", "social": "social", "ticket": "ticket"}


def churn_tables(customers: Sequence[Customer], rows: Sequence[Feedback], reason_ids: Sequence[str],
                 outcomes: Sequence[ChurnOutcome] = ()) -> ChurnTables:
    """The customers' stored history and churn outcomes as validated ``churn.schema`` tables."""
    allowed = set(reason_ids)
    first_seen: dict[str, datetime] = {}
    for row in rows:
        first_seen[row.customer_id] = min(first_seen.get(row.customer_id, row.created_at), row.created_at)
    customer_rows = []
    for c in customers:
        try:
            signup = segment_date(c.attributes.get("signup_date"))
        except ValueError:  # absent, or a bad value stored before ingestion checked it: missing for this customer
            signup = min(first_seen.get(c.id, c.created_at), c.created_at)
        record = {"customer_id": c.id, "signup_date": signup.isoformat()}
        record.update({k: str(c.attributes[k]) for k in CUSTOMER_SEGMENTS if k in c.attributes})
        revenue = c.attributes.get("revenue")
        record["revenue"] = revenue if isinstance(revenue, (int, float)) and 0 <= revenue < math.inf else None
        customer_rows.append(record)
    feedback, tickets = [], []
    for row in rows:
        # No reason head at analysis time: reasons were not looked for (missing), not absent.
        reasons_ran = row.status == "analysed" and bool(row.text) and "reasons" in stored_heads(row.model_versions)
        analysis = Analysis.from_dict(row.analysis) if row.analysis else None
        sentiment, text_reasons, intent, intent_score, competitors = text_cells(analysis, reasons_ran, allowed)
        feedback.append({
            "customer_id": row.customer_id,
            "feedback_id": row.external_id,
            "timestamp": row.created_at.isoformat(),
            "channel": CHANNEL_OF_KIND[row.kind],
            "survey_type": (row.survey or {}).get("survey_type") if row.kind == "survey" else None,
            "nps": row.nps, "ces": row.ces, "csat": row.csat,
            "reasons": [r for r in (row.survey or {}).get("reasons", []) if r in allowed],
            "text": row.text,
            "sentiment_score": sentiment, "text_reasons": text_reasons, "churn_intent": intent,
            "churn_intent_score": intent_score, "competitors": competitors,
        })
        if row.ticket is not None:
            t = row.ticket
            tickets.append({
                "customer_id": row.customer_id, "ticket_id": row.external_id, "opened_at": t.opened_at.isoformat(),
                "first_response_at": t.first_response_at.isoformat() if t.first_response_at else None,
                "resolved_at": t.resolved_at.isoformat() if t.resolved_at else None,
                "reopened": 0,
            })
    return validate_tables(
        pd.DataFrame(customer_rows, columns=["customer_id", "signup_date", *CUSTOMER_SEGMENTS, "revenue"]),
        pd.DataFrame(feedback, columns=["customer_id", "feedback_id", "timestamp", "channel", "survey_type", "nps",
                                        "ces", "csat", "reasons", "text", "sentiment_score", "text_reasons",
                                        "churn_intent", "churn_intent_score", "competitors"]),
        pd.DataFrame(tickets, columns=["customer_id", "ticket_id", "opened_at", "first_response_at", "resolved_at",
                                       "reopened"]),
        pd.DataFrame({"customer_id": [o.customer_id for o in outcomes],
                      "churned_at": [o.churned_at.isoformat() for o in outcomes]}),
        reason_ids=reason_ids,
    )


def model_version(model) -> str:
    card = getattr(model, "card_", None) or {}
    sha = (card.get("artefact") or {}).get("sha256", "")
    return f"churn-{sha[:12]}" if sha else "churn-unversioned"


DRIFT_PSI = 0.25
"""A feature whose population stability index against the training data reaches this has shifted a lot."""


def score(model, customers: Sequence[Customer], rows: Sequence[Feedback], as_of: datetime,
          threshold: float | None, outcomes: Sequence[ChurnOutcome] = ()) -> tuple[pd.DataFrame, dict[str, float]]:
    """``churn.scoring.score_at`` over the customers' stored history as it stood at ``as_of``, and the
    features that drifted from training (PSI >= :data:`DRIFT_PSI`, largest first).

    Customers whose recorded churn lies before ``as_of`` have left: they get no score.
    """
    tables = churn_tables(customers, rows, reason_ids_of(model), outcomes)
    scores = score_at(model, tables, as_of + timedelta(seconds=1), threshold=threshold, intent_sentence=churn_intent)
    return scores, live_drift(model, tables, as_of)


def live_drift(model, tables: ChurnTables, as_of: datetime) -> dict[str, float]:
    """Features of the customers in ``tables`` at ``as_of`` whose PSI against ``model``'s training
    data is at least :data:`DRIFT_PSI`, largest first."""
    features = features_for(model, tables, as_of + timedelta(seconds=1))
    drift = model.drift(features[list(model.feature_names_in_)]) if len(features) else {}
    return {c: v for c, v in drift.items() if v >= DRIFT_PSI}


@dataclass
class FlagOutcome:
    scored: int
    cases_opened: int
    already_open: int
    recently_closed: int
    over_capacity: int
    model_version: str
    threshold: float
    as_of: datetime
    as_of_rule: str
    tiers: dict[str, str]
    drift: dict[str, float]


def tier_meaning(model, threshold: float) -> dict[str, str]:
    """What each tier means in probabilities, as a support lead should read it."""
    horizon = model.horizon_days
    rate = ((getattr(model, "card_", None) or {}).get("data") or {}).get("churn_rate")
    typical = f"; an average customer in training: {rate:.0%}" if rate is not None else ""
    return {
        "high": f"at least {threshold:.0%} chance of leaving within {horizon} days{typical}; a case is opened",
        "medium": f"{threshold / 2:.0%} to {threshold:.0%} chance of leaving within {horizon} days; no case",
        "low": f"under {threshold / 2:.0%} chance of leaving within {horizon} days",
    }


def resolve_as_of(session: Session, requested: datetime | None, now: datetime) -> tuple[datetime, str]:
    """The as-of rule (module docstring): the request's moment, else the latest stored event."""
    if requested is not None:
        requested = requested if requested.tzinfo else requested.replace(tzinfo=timezone.utc)
        if requested > now:
            raise ApiError(422, "invalid_as_of", f"as_of {requested.isoformat()} is in the future")
        if requested < EARLIEST:  # nothing is stored before it, and pandas cannot hold year 1 (found by fuzzing)
            raise ApiError(422, "invalid_as_of", f"as_of {requested.isoformat()} is before {EARLIEST.date()}")
        return requested, "request"
    latest = queries.latest_event(session)
    return (now, "now") if latest is None or latest > now else (latest, "latest event")


def flag(
    session: Session,
    model,
    threshold: float | None,
    *,
    actor: str = "cxm flag",
    rescore_all: bool = False,
    as_of: datetime | None = None,
    cooldown_days: int = 30,
    cases_per_day: int = 0,
) -> FlagOutcome:
    """Re-score customers with new feedback and open one case per customer crossing ``threshold``.

    ``threshold=None`` uses the model's own, chosen on validation data at training. Cases open
    highest risk first, at most ``cases_per_day`` in any 24 hours (0: no cap); the rest stay in
    the queue, high tier, without a case. A customer whose case was resolved or dismissed in the
    last ``cooldown_days`` gets no new case: the team has just spoken to them. ``as_of`` follows
    the as-of rule of this module. ``drift`` names the features of the scored customers that
    shifted far from the model's training data.
    """
    threshold = float(model.threshold_) if threshold is None else threshold
    now = datetime.now(timezone.utc)
    as_of, rule = resolve_as_of(session, as_of, now)
    version = model_version(model)
    tiers = tier_meaning(model, threshold)
    customers = queries.customers_to_score(session, only_flagged=not rescore_all)
    if not customers:
        return FlagOutcome(0, 0, 0, 0, 0, version, threshold, as_of, rule, tiers, {})
    ids = [c.id for c in customers]
    rows = queries.customer_feedback(session, ids)
    scores, drift = score(model, customers, rows, as_of, threshold, queries.churn_outcomes(session, ids))
    scores = scores.sort_values("probability", ascending=False, kind="stable")
    by_id = {c.id: c for c in customers}
    for record in scores.itertuples(index=False):
        queries.upsert_risk(session, RiskScore(
            customer_id=record.customer_id, probability=round(float(record.probability), 4),
            tier=str(record.tier), reasons=plain({"items": list(record.reasons), "drivers": record.drivers}),
            model_version=version, computed_at=now,
        ))
    queries.clear_scoring_marks(session, {c.id: c.scoring_marks for c in customers})
    session.commit()

    opened = already = recent = capped = 0
    room = cases_per_day - queries.cases_opened_since(session, now - timedelta(days=1)) if cases_per_day else None
    with_open_case = queries.customers_with_open_cases(session)
    closed_lately = queries.customers_with_cases_closed_since(session, now - timedelta(days=cooldown_days))
    for record in scores.itertuples(index=False):
        if record.probability < threshold or record.customer_id not in by_id:
            continue
        if record.customer_id in with_open_case:
            already += 1
            continue
        if record.customer_id in closed_lately:
            recent += 1
            continue
        if room is not None and opened >= room:
            capped += 1
            continue
        case = Case(customer_id=record.customer_id, status="open", risk_probability=float(record.probability),
                    risk_tier=str(record.tier), opened_at=now, updated_at=now)
        event = CaseEvent(actor=actor, action="opened", to_status="open", at=now,
                          note="; ".join(record.reasons) or None)
        try:
            queries.add_case(session, case, event)
            session.commit()
            opened += 1
        except IntegrityError:
            # Another flag run opened it a moment ago: the unique index keeps one open case.
            session.rollback()
            already += 1
    return FlagOutcome(len(scores), opened, already, recent, capped, version, threshold, as_of, rule, tiers, drift)
