"""Store feedback first (redacted, idempotent on ``external_id``), then analyse it.

Re-sending an item is a ``duplicate`` only when its content is what is stored; other content
under a taken ``external_id`` is a ``conflict``, reported rather than silently dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.db import queries
from api.db.models import Feedback, Ticket
from api.pii import PiiRedactor
from api.schemas.feedback import FeedbackBatchResult, FeedbackItem, ItemResult, TicketFeedback
from api.services.analysis import Analyzer, analyse_stored

_ITEM = TypeAdapter(FeedbackItem)
INLINE_LEASE_S = 300.0
"""How long rows an API process analyses itself are kept from workers (a 500-item batch takes seconds)."""


class IngestBacklog(Exception):
    """More feedback waits for analysis than the configured bound: ingest later."""


def check_backlog(sessions: sessionmaker, max_pending: int) -> None:
    """Back-pressure: :class:`IngestBacklog` while more than ``max_pending`` rows wait (0: no bound)."""
    if max_pending <= 0:
        return
    with sessions() as session:
        pending = queries.pending_backlog(session, max_pending)
    if pending > max_pending:
        raise IngestBacklog(f"more than {max_pending} feedback rows wait for analysis")


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("survey", "social", "ticket"))
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


def _utc(value):
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_items(raw: list[Any], adapter: TypeAdapter,
                key: str) -> Iterator[tuple[int, str | None, Any, str | None]]:
    """Per raw item: its index, its ``key`` field (when a string), the parsed item (None when
    invalid) and why it is invalid (None when valid)."""
    for index, item in enumerate(raw):
        value = item.get(key) if isinstance(item, dict) else None
        try:
            parsed, reason = adapter.validate_python(item), None
        except ValidationError as exc:
            parsed, reason = None, _reason(exc)
        yield index, value if isinstance(value, str) else None, parsed, reason


def validate_items(raw: list[Any]) -> tuple[list[tuple[int, Any]], list[ItemResult]]:
    """Split a batch into valid items and per-item rejections (in-batch repeats: duplicates or conflicts)."""
    valid, results, seen = [], [], {}
    for index, external_id, parsed, reason in parse_items(raw, _ITEM, "external_id"):
        if reason is not None:
            results.append(ItemResult(index=index, external_id=external_id, status="rejected", reason=reason))
            continue
        if parsed.external_id in seen:
            same = seen[parsed.external_id].model_dump() == parsed.model_dump()
            results.append(ItemResult(
                index=index, external_id=parsed.external_id, status="duplicate" if same else "conflict",
                reason="repeated within this batch" if same else "repeated within this batch with other content"))
            continue
        seen[parsed.external_id] = parsed
        valid.append((index, parsed))
    return valid, results


def _rows(item, redactor: PiiRedactor) -> tuple[Feedback, Ticket | None]:
    """The rows to store, with personal data redacted from every free-text field, not only ``text``."""
    counts: Counter[str] = Counter()

    def clean(value):
        return redactor.redact_value(value, counts)

    text = clean(item.text)
    survey = None
    if item.kind == "survey":
        survey = {
            "survey_type": item.survey_type,
            "reasons": [clean(r) for r in item.reasons],
            "journey_stage": clean(item.journey_stage),
            "touchpoint": clean(item.touchpoint),
        }
    elif item.kind == "social":
        survey = {"platform": clean(item.platform)} if item.platform else None
    row = Feedback(
        external_id=item.external_id,
        customer_id=item.customer_id,
        kind=item.kind,
        channel=item.channel,
        created_at=_utc(item.timestamp),
        text=text or None,
        segments={key: clean(value) for key, value in item.segments.items()},
        survey=survey,
        nps=getattr(item, "nps", None),
        csat=getattr(item, "csat", None),
        ces=getattr(item, "ces", None),
        redactions=dict(counts),
        status="pending",
        attempts=0,
    )
    ticket = None
    if isinstance(item, TicketFeedback):
        ticket = Ticket(
            customer_id=item.customer_id,
            opened_at=_utc(item.timestamp),
            first_response_at=item.first_response_at and _utc(item.first_response_at),
            resolved_at=item.resolved_at and _utc(item.resolved_at),
            contacts=item.contacts,
            priority=item.priority,
        )
    return row, ticket


_ROW_CONTENT = ("customer_id", "kind", "channel", "created_at", "text", "segments", "survey", "nps", "csat", "ces")
_TICKET_CONTENT = ("opened_at", "first_response_at", "resolved_at", "contacts", "priority")


def _content(row: Feedback, ticket: Ticket | None) -> tuple:
    """What a client sent, as stored (redacted): equal for a re-sent item, different for a reused id."""
    return (tuple(getattr(row, name) for name in _ROW_CONTENT),
            ticket and tuple(getattr(ticket, name) for name in _TICKET_CONTENT))


def _store(session: Session, valid: list[tuple[int, Any]], redactor: PiiRedactor,
           lease_until: datetime | None) -> tuple[list[ItemResult], dict[int, str | None]]:
    existing = queries.feedback_by_external_ids(session, [item.external_id for _, item in valid])
    results, new_texts = [], {}
    attributes: dict[str, dict[str, Any]] = {}
    fresh = []
    for index, item in valid:
        row, ticket = _rows(item, redactor)
        stored = existing.get(item.external_id)
        if stored is not None:
            same = _content(row, ticket) == _content(stored, stored.ticket)
            results.append(ItemResult(
                index=index, external_id=item.external_id, status="duplicate" if same else "conflict",
                feedback_id=stored.id,
                reason="external_id already stored" if same else "external_id already stored with other content"))
            continue
        attributes.setdefault(item.customer_id, {}).update(row.segments)
        fresh.append((index, item, row, ticket))
    queries.upsert_customers(session, attributes)
    for index, item, row, ticket in fresh:
        row.leased_until = lease_until
        queries.add_feedback(session, row, ticket)
        new_texts[row.id] = row.text
        results.append(ItemResult(index=index, external_id=item.external_id, status="stored",
                                  feedback_id=row.id, analysis_status="pending"))
    session.commit()
    return results, new_texts


def ingest(
    sessions: sessionmaker,
    items: list[Any],
    redactor: PiiRedactor,
    analyzer: Analyzer | None = None,
    versions: dict[str, str] | None = None,
    max_attempts: int = 5,
    retry_after_s: float = 0.0,
) -> FeedbackBatchResult:
    """Validate, store and (when an analyzer is given) analyse a batch; one result per item.

    ``items`` are JSON-like dicts or ``SurveyFeedback`` / ``SocialFeedback`` / ``TicketFeedback``.
    Rows are committed before analysis, so a failing analyzer leaves them pending, never lost; without
    an analyzer they stay pending for ``cxm worker`` (queued mode).
    """
    valid, results = validate_items(items)
    return ingest_valid(sessions, valid, redactor, analyzer, versions, max_attempts, results, retry_after_s)


def ingest_valid(
    sessions: sessionmaker,
    valid: list[tuple[int, Any]],
    redactor: PiiRedactor,
    analyzer: Analyzer | None = None,
    versions: dict[str, str] | None = None,
    max_attempts: int = 5,
    results: list[ItemResult] | None = None,
    retry_after_s: float = 0.0,
) -> FeedbackBatchResult:
    """:func:`ingest` for items :func:`validate_items` already accepted, as its ``(index, item)``
    pairs; ``results`` are its rejections, reported with the stored items. Rows this call analyses
    are leased to it, so no worker takes them meanwhile (unless this process dies: the lease ends)."""
    lease_until = datetime.now(timezone.utc) + timedelta(seconds=INLINE_LEASE_S) if analyzer is not None else None
    results = list(results or [])
    stored: list[ItemResult] = []
    new_texts: dict[int, str | None] = {}
    for attempt in range(2):
        with sessions() as session:
            try:
                stored, new_texts = _store(session, valid, redactor, lease_until)
                break
            except IntegrityError:
                # A concurrent request stored one of these ids first: re-read, report duplicates or conflicts.
                session.rollback()
                if attempt == 1:
                    raise
    if analyzer is not None and new_texts:
        status = analyse_stored(sessions, analyzer, new_texts, versions or {}, max_attempts, retry_after_s).statuses
        for result in stored:
            if result.status == "stored":
                result.analysis_status = status[result.feedback_id]
    results = sorted(results + stored, key=lambda r: r.index)
    return FeedbackBatchResult(
        stored=sum(r.status == "stored" for r in results),
        duplicates=sum(r.status == "duplicate" for r in results),
        conflicts=sum(r.status == "conflict" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        items=results,
    )
