"""Churn risk per customer from stored feedback, and ``flag``: re-score, open cases above the threshold.

The stored rows become the four ``churn.schema`` tables, so the API scores with exactly the
features the churn model was trained on (``churn.scoring``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import queries
from api.db.models import Case, CaseEvent, ChurnOutcome, Customer, Feedback, RiskScore
from churn.schema import CUSTOMER_SEGMENTS, validate_tables
from churn.scoring import features_for, reason_ids_of, score_customers

CHANNEL_OF_KIND = {"survey": "survey", "social": "social", "ticket": "ticket"}


def _plain(value):
    """JSON-safe copy (numpy scalars become Python numbers)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def churn_tables(customers: Sequence[Customer], rows: Sequence[Feedback], reason_ids: Sequence[str],
                 outcomes: Sequence[ChurnOutcome] = ()):
    """The customers' stored history and churn outcomes as validated ``churn.schema`` tables."""
    allowed = set(reason_ids)
    first_seen: dict[str, datetime] = {}
    for row in rows:
        first_seen[row.customer_id] = min(first_seen.get(row.customer_id, row.created_at), row.created_at)
    customer_rows = []
    for c in customers:
        signup = c.attributes.get("signup_date") or min(first_seen.get(c.id, c.created_at), c.created_at)
        record = {"customer_id": c.id, "signup_date": pd.Timestamp(signup).isoformat()}
        record.update({k: str(c.attributes[k]) for k in CUSTOMER_SEGMENTS if k in c.attributes})
        revenue = c.attributes.get("revenue")
        record["revenue"] = revenue if isinstance(revenue, (int, float)) and revenue >= 0 else None
        customer_rows.append(record)
    feedback, tickets = [], []
    for row in rows:
        analysis = row.analysis or {}
        signals = analysis.get("signals") or None
        sentiment = analysis.get("sentiment") or None
        feedback.append({
            "customer_id": row.customer_id,
            "timestamp": row.created_at.isoformat(),
            "channel": CHANNEL_OF_KIND[row.kind],
            "survey_type": (row.survey or {}).get("survey_type") if row.kind == "survey" else None,
            "nps": row.nps, "ces": row.ces, "csat": row.csat,
            "reasons": [r for r in (row.survey or {}).get("reasons", []) if r in allowed],
            "text": row.text,
            "sentiment_score": sentiment["score"] if sentiment else None,
            "text_reasons": [r["id"] for r in analysis.get("reasons", []) if r["id"] in allowed]
            if row.status == "analysed" and row.text else None,
            "churn_intent": None if signals is None else bool(signals["churn_intent"]),
            "competitors": None if signals is None else list(signals["competitors"]),
        })
        if row.ticket is not None:
            t = row.ticket
            tickets.append({
                "customer_id": row.customer_id, "opened_at": t.opened_at.isoformat(),
                "first_response_at": t.first_response_at.isoformat() if t.first_response_at else None,
                "resolved_at": t.resolved_at.isoformat() if t.resolved_at else None,
                "reopened": 0,
            })
    return validate_tables(
        pd.DataFrame(customer_rows, columns=["customer_id", "signup_date", *CUSTOMER_SEGMENTS, "revenue"]),
        pd.DataFrame(feedback, columns=["customer_id", "timestamp", "channel", "survey_type", "nps", "ces",
                                        "csat", "reasons", "text", "sentiment_score", "text_reasons",
                                        "churn_intent", "competitors"]),
        pd.DataFrame(tickets, columns=["customer_id", "opened_at", "first_response_at", "resolved_at", "reopened"]),
        pd.DataFrame({"customer_id": [o.customer_id for o in outcomes],
                      "churned_at": [o.churned_at.isoformat() for o in outcomes]}),
        reason_ids=reason_ids,
    )


def model_version(model) -> str:
    card = getattr(model, "card_", None) or {}
    sha = (card.get("artefact") or {}).get("sha256", "")
    return f"churn-{sha[:12]}" if sha else "churn-unversioned"


def score(model, customers: Sequence[Customer], rows: Sequence[Feedback], as_of: datetime,
          threshold: float | None, outcomes: Sequence[ChurnOutcome] = ()) -> pd.DataFrame:
    """``churn.scoring.score_customers`` over the customers' stored history as it stood at ``as_of``.

    Customers whose recorded churn lies before ``as_of`` have left: they get no score.
    """
    tables = churn_tables(customers, rows, reason_ids_of(model), outcomes)
    features = features_for(model, tables, as_of + timedelta(seconds=1))
    return score_customers(model, features, threshold=threshold)


@dataclass
class FlagOutcome:
    scored: int
    cases_opened: int
    already_open: int
    recently_closed: int
    model_version: str
    threshold: float


def flag(
    session: Session,
    model,
    threshold: float | None,
    *,
    actor: str = "cxm flag",
    rescore_all: bool = False,
    as_of: datetime | None = None,
    cooldown_days: int = 30,
) -> FlagOutcome:
    """Re-score customers with new feedback and open one case per customer crossing ``threshold``.

    ``threshold=None`` uses the model's own, chosen on validation data at training. A customer
    whose case was resolved or dismissed in the last ``cooldown_days`` gets no new case: the team
    has just spoken to them, and a re-score should not put them straight back in the queue.
    """
    threshold = float(model.threshold_) if threshold is None else threshold
    as_of = as_of or datetime.now(timezone.utc)
    version = model_version(model)
    customers = queries.customers_to_score(session, only_flagged=not rescore_all)
    if not customers:
        return FlagOutcome(0, 0, 0, 0, version, threshold)
    ids = [c.id for c in customers]
    rows = queries.customer_feedback(session, ids)
    scores = score(model, customers, rows, as_of, threshold, queries.churn_outcomes(session, ids))
    by_id = {c.id: c for c in customers}
    for record in scores.itertuples(index=False):
        queries.upsert_risk(session, RiskScore(
            customer_id=record.customer_id, probability=round(float(record.probability), 4),
            tier=str(record.tier), reasons=_plain({"items": list(record.reasons), "drivers": record.drivers}),
            model_version=version, computed_at=as_of,
        ))
    for customer in customers:
        customer.needs_scoring = False
    session.commit()

    opened = already = recent = 0
    with_open_case = queries.customers_with_open_cases(session)
    closed_lately = queries.customers_with_cases_closed_since(session, as_of - timedelta(days=cooldown_days))
    for record in scores.itertuples(index=False):
        if record.probability < threshold or record.customer_id not in by_id:
            continue
        if record.customer_id in with_open_case:
            already += 1
            continue
        if record.customer_id in closed_lately:
            recent += 1
            continue
        case = Case(customer_id=record.customer_id, status="open", risk_probability=float(record.probability),
                    risk_tier=str(record.tier), opened_at=as_of, updated_at=as_of)
        event = CaseEvent(actor=actor, action="opened", to_status="open", at=as_of,
                          note="; ".join(record.reasons) or None)
        try:
            queries.add_case(session, case, event)
            session.commit()
            opened += 1
        except IntegrityError:
            # Another flag run opened it a moment ago: the unique index keeps one open case.
            session.rollback()
            already += 1
    return FlagOutcome(len(scores), opened, already, recent, version, threshold)
