"""Agents correct a feedback item's sentiment, reasons or churn intent; the stored analysis is never changed.

The effective value of a field is its latest correction, else the model's. A correction equal to the
latest one is a no-op (idempotent); one equal to the model's value is stored, as a confirmation, so
the agreement metric counts what agents judged right as well as wrong.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api.db import queries
from api.db.models import CORRECTION_FIELDS, Correction, Feedback
from api.errors import ApiError
from api.pii import PiiRedactor
from api.schemas.corrections import (
    AgreementRow,
    CorrectionIn,
    CorrectionPage,
    CorrectionPublic,
    CorrectionResult,
    EffectiveLabels,
    FeedbackCorrections,
    ModelQuality,
)
from api.services.analysis import stored_heads
from nlp.reason_taxonomy import load_taxonomy


@lru_cache(maxsize=8)
def reason_choices(taxonomy: Path | None) -> tuple[tuple[str, str], ...]:
    """The reasons a correction may name, as (id, English label): the service's taxonomy, read once
    per process like the models."""
    return tuple((r.id, r.label.get("en", r.id)) for r in load_taxonomy(taxonomy).reasons)


def known_reasons(taxonomy: Path | None) -> frozenset[str]:
    """The reason ids a correction may name."""
    return frozenset(reason_id for reason_id, _ in reason_choices(taxonomy))


def model_values(row: Feedback) -> dict[str, Any]:
    """What the stored analysis says per field; None where that head did not run (or the row is not analysed)."""
    analysis = (row.analysis or {}) if row.status == "analysed" else {}
    sentiment = analysis.get("sentiment") or {}
    signals = analysis.get("signals") or {}
    return {
        "sentiment": sentiment.get("label"),
        "reasons": [r["id"] for r in analysis.get("reasons", [])] if "reasons" in stored_heads(row.model_versions)
        else None,
        "churn_intent": signals.get("churn_intent"),
    }


def effective(row: Feedback, latest: dict[str, Correction]) -> EffectiveLabels:
    """The value to show per field: the latest correction, else the model's."""
    values = model_values(row)
    values.update({name: c.new_value for name, c in latest.items()})
    return EffectiveLabels(**values, corrected=[f for f in CORRECTION_FIELDS if f in latest])


def effective_labels(session: Session, rows: list[Feedback]) -> dict[int, EffectiveLabels]:
    """:func:`effective` for many rows in one query."""
    latest = queries.latest_corrections(session, [r.id for r in rows])
    return {r.id: effective(r, latest.get(r.id, {})) for r in rows}


def _public(c: Correction) -> CorrectionPublic:
    return CorrectionPublic(id=c.id, feedback_id=c.feedback_id, field=c.field, old_value=c.old_value,
                            new_value=c.new_value, model_value=c.model_value, actor=c.actor, at=c.at, note=c.note)


def _feedback(session: Session, feedback_id: int) -> Feedback:
    row = queries.get_feedback(session, feedback_id)
    if row is None:
        raise ApiError(404, "not_found", f"no feedback {feedback_id}")
    return row


def correct(session: Session, feedback_id: int, change: CorrectionIn, actor: str, reason_ids: frozenset[str],
            redactor: PiiRedactor) -> CorrectionResult:
    """Store one correction per changed field (committed) and return the item's effective labels.

    The note is free text about a customer: personal data is redacted before it is stored.
    """
    row = _feedback(session, feedback_id)
    wanted: dict[str, Any] = {"sentiment": change.sentiment, "churn_intent": change.churn_intent,
                              "reasons": None if change.reasons is None else sorted(set(change.reasons))}
    unknown = sorted(set(wanted["reasons"] or ()) - reason_ids)
    if unknown:
        raise ApiError(422, "validation_error", f"unknown reason id(s) {unknown}; the taxonomy has {sorted(reason_ids)}",
                       {"unknown_reasons": unknown})
    latest = queries.latest_corrections(session, [row.id]).get(row.id, {})
    model = model_values(row)
    note = None if change.note is None else redactor.redact([change.note])[0].text
    created, unchanged = [], []
    for name in CORRECTION_FIELDS:
        value = wanted[name]
        if value is None:
            continue
        prior = latest.get(name)
        if prior is not None and prior.new_value == value:
            unchanged.append(name)
            continue
        latest[name] = queries.add_correction(session, Correction(
            feedback_id=row.id, field=name, old_value=prior.new_value if prior else model[name], new_value=value,
            model_value=model[name], actor=actor, note=note))
        created.append(latest[name])
    session.commit()
    return CorrectionResult(feedback_id=row.id, created=[_public(c) for c in created], unchanged=unchanged,
                            effective=effective(row, latest))


def feedback_corrections(session: Session, feedback_id: int, limit: int = 200) -> FeedbackCorrections:
    row = _feedback(session, feedback_id)
    items = queries.list_corrections(session, limit, feedback_id=feedback_id)
    return FeedbackCorrections(feedback_id=row.id, effective=effective_labels(session, [row])[row.id],
                               items=[_public(c) for c in items])


def page(session: Session, *, limit: int, before: str | None, feedback_id: int | None,
         field: str | None) -> CorrectionPage:
    """One page of corrections, newest first; ``next`` is the cursor of the older page."""
    if before is not None and not before.isdigit():
        raise ApiError(422, "validation_error", f"before={before!r} is not a corrections cursor "
                       "(pass the next of the previous page)")
    rows = queries.list_corrections(session, limit + 1, None if before is None else int(before), feedback_id, field)
    items = rows[:limit]
    return CorrectionPage(items=[_public(c) for c in items],
                          next=str(items[-1].id) if len(rows) > limit else None)


def _same(field: str, model: Any, agent: Any) -> bool:
    return set(model) == set(agent) if field == "reasons" else model == agent


def model_quality(session: Session, start: datetime | None, end: datetime | None) -> ModelQuality:
    """Per ISO week of the feedback and field: how often the model's label equals the agent's latest one."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    starts = {}
    for at, name, model, agent in queries.correction_verdicts(session, start, end):
        if model is None:
            continue
        year, week, weekday = at.isocalendar()
        key = f"{year}-W{week:02d}"
        starts[key] = (at - timedelta(days=weekday - 1)).date()
        cell = counts[(key, name)]
        cell[0] += 1
        cell[1] += _same(name, model, agent)
    return ModelQuality(items=[
        AgreementRow(week=week, week_start=starts[week], field=name, corrected=n, agreed=agreed,
                     agreement=round(agreed / n, 4))
        for (week, name), (n, agreed) in sorted(counts.items())
    ])
