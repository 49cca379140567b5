"""Analyse stored feedback; a failure leaves the row pending for the next retry, never lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import sessionmaker

import nlp
from api.db import queries
from api.db.models import Feedback
from api.settings import Settings
from nlp.analyzer import Analyzer
from nlp.results import Analysis


def model_versions(settings: Settings, analyzer: Analyzer) -> dict[str, str]:
    """What produced an analysis, stored beside it so old rows can be told apart after retraining.

    ``heads`` is stored comma-joined, as rows written before hold it; :func:`stored_heads` reads it back.
    """
    return {
        "cxm": nlp.__version__,
        "encoder": settings.encoder,
        "sentiment": settings.sentiment_model,
        "runtime": settings.backend + ("-int8" if settings.quantize == "int8" else ""),
        "heads": ",".join(analyzer.heads) or "language",
    }


def stored_heads(versions: dict[str, str] | None) -> tuple[str, ...]:
    """The analyzer heads :func:`model_versions` recorded beside a stored analysis."""
    return tuple(h for h in ((versions or {}).get("heads") or "").split(",") if h and h != "language")


@dataclass
class AnalysisOutcome:
    analysed: int = 0
    pending: int = 0
    failed: int = 0
    statuses: dict[int, str] = field(default_factory=dict)


def analyse_stored(
    sessions: sessionmaker,
    analyzer: Analyzer,
    texts: dict[int, str | None],
    versions: dict[str, str],
    max_attempts: int,
    retry_after_s: float = 0.0,
) -> AnalysisOutcome:
    """Analyse stored rows (id -> text) in one batch with no database connection held while the
    model runs (under ingest load that ran the pool dry), then record each result or error in one
    short transaction; a failed row is not retried for ``retry_after_s``. Rows another worker
    finished meanwhile keep that worker's result."""
    with_text = [i for i, t in texts.items() if t and t.strip()]
    try:
        results = analyzer.analyze([texts[i] for i in with_text]) if with_text else []
        found: dict[int, tuple[Analysis | None, str | None]] = {
            i: (r, r.error) for i, r in zip(with_text, results, strict=True)}
    except Exception as exc:  # the model failing must not lose the stored rows
        found = {i: (None, f"{type(exc).__name__}: {exc}") for i in with_text}
    now = datetime.now(timezone.utc)
    outcome = AnalysisOutcome()
    with sessions() as session:
        rows = queries.feedback_by_ids(session, list(texts))
        for row in rows:
            if row.status == "pending":
                _record(row, *found.get(row.id, (None, None)), versions, max_attempts, now)
                row.leased_until = now + timedelta(seconds=retry_after_s) if row.status == "pending" else None
            setattr(outcome, row.status, getattr(outcome, row.status) + 1)
            outcome.statuses[row.id] = row.status
        queries.mark_customers_for_scoring(session, [r.customer_id for r in rows if r.status == "analysed"])
        session.commit()
    return outcome


def _record(row: Feedback, result: Analysis | None, error: str | None, versions: dict[str, str],
            max_attempts: int, now: datetime) -> None:
    row.attempts += 1
    if error is not None:
        row.last_error = error[:2000]
        row.status = "failed" if row.attempts >= max_attempts else "pending"
        return
    row.status = "analysed"
    row.analysis = result.to_dict() if result is not None else None
    row.model_versions = versions
    row.analysed_at = now
    row.last_error = None
    for name, value in aggregated_columns(row.analysis).items():
        setattr(row, name, value)


def aggregated_columns(analysis: dict | None) -> dict[str, object]:
    """What the dashboards aggregate in the database, kept beside the stored analysis: its most
    probable topic (-1 and "no topic" when it has none), sentiment score and label, and language."""
    if analysis is None:
        return {"topic_id": None, "topic_label": None, "sentiment_score": None, "sentiment_label": None,
                "language": None}
    topics = analysis.get("topics") or []
    top = max(topics, key=lambda t: t["probability"]) if topics else {"id": -1, "label": "no topic"}
    sentiment = analysis.get("sentiment")
    return {"topic_id": top["id"], "topic_label": top["label"],
            "sentiment_score": sentiment["score"] if sentiment else None,
            "sentiment_label": sentiment["label"] if sentiment else None, "language": analysis.get("language")}


def retry_pending(
    sessions: sessionmaker,
    analyzer: Analyzer,
    versions: dict[str, str],
    max_attempts: int,
    *,
    include_failed: bool = False,
    limit: int = 256,
    lease_s: float = 300.0,
    retry_after_s: float = 0.0,
) -> tuple[int, AnalysisOutcome]:
    """One pass of a worker: lease up to ``limit`` pending rows for ``lease_s`` (any number of workers
    take disjoint rows; a row of a worker that died is taken again once its lease ends), analyse them
    and commit the results."""
    with sessions() as session:
        if include_failed:
            queries.requeue_failed(session)
        texts = queries.claim_pending(session, max_attempts, limit,
                                      datetime.now(timezone.utc) + timedelta(seconds=lease_s))
        session.commit()
    outcome = (analyse_stored(sessions, analyzer, texts, versions, max_attempts, retry_after_s) if texts
               else AnalysisOutcome())
    return len(texts), outcome
