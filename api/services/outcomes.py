"""Store churn outcomes (who left, when): validated per item, one per customer, idempotent."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.db import queries
from api.db.models import ChurnOutcome
from api.schemas.outcomes import OutcomeBatchResult, OutcomeItem, OutcomeResult
from api.services.ingestion import parse_items

_ITEM = TypeAdapter(OutcomeItem)


def validate_outcomes(raw: list[Any]) -> tuple[list[tuple[int, OutcomeItem]], list[OutcomeResult]]:
    """Split a batch into valid items and per-item rejections.

    A customer given twice in one batch is rejected the second time (even with the same date):
    keeping either of two dates would make a re-send of the batch change the data.
    """
    valid, results, first = [], [], {}
    for index, customer_id, parsed, reason in parse_items(raw, _ITEM, "customer_id"):
        if reason is not None:
            results.append(OutcomeResult(index=index, customer_id=customer_id, status="rejected", reason=reason))
            continue
        if parsed.customer_id in first:
            results.append(OutcomeResult(index=index, customer_id=parsed.customer_id, status="rejected",
                                         reason=f"customer_id already given by item {first[parsed.customer_id]}"))
            continue
        first[parsed.customer_id] = index
        valid.append((index, parsed))
    return valid, results


def _store(session: Session, valid: list[tuple[int, OutcomeItem]]) -> list[OutcomeResult]:
    ids = [item.customer_id for _, item in valid]
    known = queries.existing_customer_ids(session, ids)
    stored = {o.customer_id: o for o in queries.churn_outcomes(session, ids)}
    now = datetime.now(timezone.utc)
    results = []
    for index, item in valid:
        if item.customer_id not in known:
            results.append(OutcomeResult(index=index, customer_id=item.customer_id, status="rejected",
                                         reason="unknown customer_id: store the customer's feedback first"))
            continue
        outcome = stored.get(item.customer_id)
        if outcome is None:
            queries.add_churn_outcome(session, ChurnOutcome(
                customer_id=item.customer_id, churned_at=item.churned_at, recorded_at=now))
            status = "created"
        elif outcome.churned_at == item.churned_at:
            status = "unchanged"
        else:
            outcome.churned_at, outcome.recorded_at = item.churned_at, now
            status = "updated"
        results.append(OutcomeResult(index=index, customer_id=item.customer_id, status=status,
                                     churned_at=item.churned_at))
    session.commit()
    return results


def record_outcomes(sessions: sessionmaker, items: list[Any]) -> OutcomeBatchResult:
    """Validate and store a batch of outcomes; one result per item, in order."""
    valid, results = validate_outcomes(items)
    stored: list[OutcomeResult] = []
    for attempt in range(2):
        with sessions() as session:
            try:
                stored = _store(session, valid)
                break
            except IntegrityError:
                # A concurrent request stored one of these customers first: re-read and compare.
                session.rollback()
                if attempt == 1:
                    raise
    results = sorted(results + stored, key=lambda r: r.index)
    count = {status: sum(r.status == status for r in results)
             for status in ("created", "updated", "unchanged", "rejected")}
    return OutcomeBatchResult(**count, items=results)
