"""Analyse stored feedback; a failure leaves the row pending for the next retry, never lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from sqlalchemy.orm import Session

from api.db import queries
from api.db.models import Feedback
from api.settings import Settings
from nlp.results import Analysis


class Analyzer(Protocol):
    def analyze(self, texts: Sequence[str | None]) -> list[Analysis]: ...


def model_versions(settings: Settings, analyzer: object) -> dict[str, str]:
    """What produced an analysis, stored beside it so old rows can be told apart after retraining."""
    try:
        cxm_version = version("cxm")
    except PackageNotFoundError:
        cxm_version = "unknown"
    heads = [name for name in ("sentiment", "sentence_splitter", "reasons", "topics", "signals")
             if getattr(analyzer, name, None) is not None]
    return {
        "cxm": cxm_version,
        "encoder": settings.encoder,
        "sentiment": settings.sentiment_model,
        "runtime": settings.backend + ("-int8" if settings.quantize == "int8" else ""),
        "heads": ",".join(heads) or "language",
    }


@dataclass
class AnalysisOutcome:
    analysed: int = 0
    pending: int = 0
    failed: int = 0


def analyse_rows(
    session: Session,
    analyzer: Analyzer,
    rows: Sequence[Feedback],
    versions: dict[str, str],
    max_attempts: int,
) -> AnalysisOutcome:
    """Analyse ``rows`` in one batch and record the result or the error on each row."""
    outcome = AnalysisOutcome()
    now = datetime.now(timezone.utc)
    with_text = [r for r in rows if r.text and r.text.strip()]
    for row in rows:
        if row not in with_text:
            _done(row, None, versions, now)
    try:
        results = analyzer.analyze([r.text for r in with_text]) if with_text else []
        errors: list[str | None] = [r.error for r in results]
    except Exception as exc:  # the model failing must not lose the stored rows
        results = [None] * len(with_text)
        errors = [f"{type(exc).__name__}: {exc}"] * len(with_text)
    for row, result, error in zip(with_text, results, errors):
        if error is None:
            _done(row, result, versions, now)
        else:
            row.attempts += 1
            row.last_error = error[:2000]
            row.status = "failed" if row.attempts >= max_attempts else "pending"
    for row in rows:
        setattr(outcome, row.status, getattr(outcome, row.status) + 1)
    queries.mark_customers_for_scoring(session, [r.customer_id for r in rows if r.status == "analysed"])
    return outcome


def _done(row: Feedback, result: Analysis | None, versions: dict[str, str], now: datetime) -> None:
    row.attempts += 1
    row.status = "analysed"
    row.analysis = result.to_dict() if result is not None else None
    row.model_versions = versions
    row.analysed_at = now
    row.last_error = None


def retry_pending(
    session: Session,
    analyzer: Analyzer,
    versions: dict[str, str],
    max_attempts: int,
    *,
    include_failed: bool = False,
    limit: int = 256,
) -> tuple[int, AnalysisOutcome]:
    """One pass of the retry worker: analyse up to ``limit`` pending rows, committing the result."""
    if include_failed:
        queries.requeue_failed(session)
    rows = queries.feedback_to_analyse(session, max_attempts, limit)
    outcome = analyse_rows(session, analyzer, rows, versions, max_attempts) if rows else AnalysisOutcome()
    session.commit()
    return len(rows), outcome
