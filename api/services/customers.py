"""The triage queue and the unified customer profile, shaped for the HTTP schemas."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy.orm import Session

from api.db import queries
from api.db.models import Case, Feedback, RiskScore
from api.errors import ApiError
from api.schemas.cases import CaseSummary
from api.schemas.corrections import EffectiveLabels
from api.schemas.customers import (
    AtRiskCustomer,
    AtRiskPage,
    CustomerProfile,
    Excerpt,
    RiskPublic,
    RiskReason,
    ScorePoint,
    TicketPublic,
    TimelineEntry,
)
from api.services.corrections import effective_labels

EXCERPT_CHARS = 280


def _risk(risk: RiskScore | None) -> RiskPublic | None:
    if risk is None:
        return None
    details = [RiskReason(kind=d["kind"], text=d["text"], evidence=d["evidence"])
               for d in risk.reasons.get("drivers", []) if "kind" in d]  # scores stored before reasons had kinds: none
    return RiskPublic(probability=risk.probability, tier=risk.tier, reasons=list(risk.reasons.get("items", [])),
                      reason_details=details, model_version=risk.model_version, computed_at=risk.computed_at)


def _case(case: Case | None) -> CaseSummary | None:
    if case is None:
        return None
    return CaseSummary(id=case.id, status=case.status, assignee=case.assignee,
                       opened_at=case.opened_at, updated_at=case.updated_at)


def _excerpt(row: Feedback, labels: EffectiveLabels) -> Excerpt:
    return Excerpt(feedback_id=row.id, at=row.created_at, channel=row.channel, text=row.text[:EXCERPT_CHARS],
                   sentiment=labels.sentiment, reasons=labels.reasons or [], corrected=labels.corrected)


def at_risk(session: Session, *, tiers, segments, statuses, assignee, min_probability, limit, offset,
            excerpts: int = 3, sort: str = "probability", after: str | None = None) -> AtRiskPage:
    """One page of the queue; ``sort`` as ``queries.triage_queue``'s. Ranked by probability, a page
    also names the cursor of the next (``after``: the rows ranked below it, however deep)."""
    if after is not None and (offset or sort != "probability"):
        raise ApiError(422, "validation_error", "after= pages the queue ranked by probability; send no offset with it")
    rows, total = queries.triage_queue(session, tiers=tiers, segments=segments, statuses=statuses,
                                       assignee=assignee, min_probability=min_probability,
                                       limit=limit + 1, offset=offset, sort=sort,
                                       after=None if after is None else _parse_rank(after))
    more, rows = len(rows) > limit, rows[:limit]
    latest = queries.latest_texts(session, [risk.customer_id for risk, _, _ in rows], excerpts)
    labels = effective_labels(session, [f for texts in latest.values() for f in texts])
    items = [
        AtRiskCustomer(
            customer_id=customer.id, segments=customer.attributes, risk=_risk(risk), case=_case(case),
            latest_feedback=[_excerpt(f, labels[f.id]) for f in latest[customer.id]],
        )
        for risk, customer, case in rows
    ]
    last = rows[-1][0] if rows else None
    return AtRiskPage(items=items, total=total, limit=limit, offset=offset,
                      next_after=f"{last.probability!r}|{last.customer_id}" if more and sort == "probability" else None)


def _parse_rank(cursor: str) -> tuple[float, str]:
    probability, sep, customer_id = cursor.partition("|")
    try:
        rank = float(probability)
        if not sep or not customer_id or not math.isfinite(rank):
            raise ValueError(cursor)
        return rank, customer_id
    except ValueError:
        raise ApiError(422, "validation_error", f"after={cursor!r} is not a queue cursor "
                       "(pass the next_after of the previous page)") from None


def _entry(row: Feedback, labels: EffectiveLabels) -> TimelineEntry:
    analysis = row.analysis or {}
    ticket = row.ticket
    return TimelineEntry(
        feedback_id=row.id, external_id=row.external_id, kind=row.kind, channel=row.channel,
        at=row.created_at, text=row.text, nps=row.nps, csat=row.csat, ces=row.ces,
        picked_reasons=(row.survey or {}).get("reasons", []) if row.kind == "survey" else [],
        analysis_status=row.status, language=analysis.get("language"),
        sentiment=analysis.get("sentiment"), sentences=analysis.get("sentences", []),
        reasons=analysis.get("reasons", []), topics=analysis.get("topics", []), signals=analysis.get("signals"),
        effective=labels, ticket=None if ticket is None else TicketPublic(
            first_response_at=ticket.first_response_at, resolved_at=ticket.resolved_at,
            contacts=ticket.contacts, priority=ticket.priority),
    )


def _cursor(row: Feedback) -> str:
    return f"{row.created_at.isoformat()}|{row.id}"


def _parse_cursor(cursor: str) -> tuple[datetime, int]:
    at, sep, row_id = cursor.rpartition("|")
    try:
        if not sep:
            raise ValueError(cursor)
        return datetime.fromisoformat(at), int(row_id)
    except ValueError:
        raise ApiError(422, "validation_error", f"before={cursor!r} is not a timeline cursor "
                       "(pass the timeline_next of the previous page)") from None


def profile(session: Session, customer_id: str, *, timeline_limit: int = 50, before: str | None = None) -> CustomerProfile:
    """The profile with one page of the timeline, newest first; ``timeline_next`` fetches the older page."""
    customer = queries.get_customer(session, customer_id)
    if customer is None:
        raise ApiError(404, "not_found", f"no customer {customer_id!r}")
    keyset = None if before is None else _parse_cursor(before)
    rows = queries.customer_timeline(session, customer_id, timeline_limit + 1, keyset)
    page, more = rows[:timeline_limit], len(rows) > timeline_limit
    labels = effective_labels(session, page)
    return CustomerProfile(
        customer_id=customer.id,
        segments=customer.attributes,
        risk=_risk(queries.get_risk(session, customer_id)),
        cases=[_case(c) for c in queries.customer_cases(session, customer_id)],
        scores=[ScorePoint(at=at, nps=nps, csat=csat, ces=ces)
                for at, nps, csat, ces in queries.customer_scores(session, customer_id)],
        timeline=[_entry(r, labels[r.id]) for r in page],
        timeline_next=_cursor(page[-1]) if more else None,
    )
