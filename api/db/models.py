"""The tables: raw feedback stored before analysis, customers, tickets, churn outcomes, risk, cases and
their audit trail, API keys, model (re)training runs, and alert rules with their alerts and delivery log."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

FEEDBACK_STATUSES = ("pending", "analysed", "failed")
CASE_STATUSES = ("open", "acknowledged", "contacted", "resolved", "dismissed")
OPEN_CASE_STATUSES = ("open", "acknowledged", "contacted")
ROLES = ("viewer", "agent", "ingest", "admin")
RUN_STATUSES = ("queued", "running", "succeeded", "rejected", "failed")
CORRECTION_FIELDS = ("sentiment", "reasons", "churn_intent")

JSONType = JSON().with_variant(JSONB(), "postgresql")


def _unique_where(name: str, column: str, where: str) -> Index:
    """A partial unique index: ``column`` is unique among the rows where ``where`` holds."""
    return Index(name, column, unique=True, sqlite_where=text(where), postgresql_where=text(where))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on the way in and out (SQLite forgets the zone, PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    needs_scoring: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    scoring_marks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped whenever new data marks the customer for scoring: a flag run clears ``needs_scoring``
    only where it is still the value the run read (compare-and-set)."""


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        # Covering indexes: dashboards aggregate scores, topics and sentiment from the index alone
        # (PostgreSQL index-only scans), not from the wide rows; the pending index is the analysis work queue.
        Index("ix_feedback_scores", "created_at", "nps", "csat", "ces", "customer_id", "channel"),
        Index("ix_feedback_analysed", "created_at", "topic_id", "sentiment_score", "topic_label", "channel",
              "language", "sentiment_label",
              sqlite_where=text("topic_id IS NOT NULL"), postgresql_where=text("topic_id IS NOT NULL")),
        Index("ix_feedback_customer_time", "customer_id", "created_at", "id"),
        Index("ix_feedback_pending", "id", sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(index=True)
    text: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    survey: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    nps: Mapped[int | None] = mapped_column(Integer)
    csat: Mapped[int | None] = mapped_column(Integer)
    ces: Mapped[int | None] = mapped_column(Integer)
    redactions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    model_versions: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    analysed_at: Mapped[datetime | None] = mapped_column()
    leased_until: Mapped[datetime | None] = mapped_column()
    """A pending row is not claimed for analysis before this: a worker's lease, or a failed attempt's wait."""
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    topic_id: Mapped[int | None] = mapped_column(Integer)
    """The analysis' top topic (-1: none), null while not analysed: trends group by it in the database."""
    topic_label: Mapped[str | None] = mapped_column(String(200))
    sentiment_label: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str | None] = mapped_column(String(20))
    """The analysis' sentiment label and language, null while not analysed: sentiment by channel or
    language is counted from these."""

    ticket: Mapped[Ticket | None] = relationship(back_populates="feedback", uselist=False)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    opened_at: Mapped[datetime] = mapped_column(index=True)
    first_response_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    contacts: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[str | None] = mapped_column(String(16))

    feedback: Mapped[Feedback] = relationship(back_populates="ticket")


class ChurnOutcome(Base):
    """Who actually left, and when: the labels retraining learns from (one row per customer)."""

    __tablename__ = "churn_outcomes"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    churned_at: Mapped[datetime] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class RiskScore(Base):
    """The current churn risk of a customer (one row each, replaced on every re-score)."""

    __tablename__ = "risk_scores"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    probability: Mapped[float] = mapped_column(Float, index=True)
    tier: Mapped[str] = mapped_column(String(16), index=True)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version: Mapped[str] = mapped_column(String(200))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # At most one open case per customer, enforced by the database itself.
        _unique_where("uq_cases_one_open_per_customer", "customer_id",
                      "status IN ('open', 'acknowledged', 'contacted')"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    assignee: Mapped[str | None] = mapped_column(String(200), index=True)
    risk_probability: Mapped[float] = mapped_column(Float)
    risk_tier: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )


class CaseEvent(Base):
    """Audit trail: who did what to a case, and when."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="events")


class ApiKey(Base):
    """Keys are stored as SHA-256 of a 256-bit random secret; the secret is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()


class RateLimitBucket(Base):
    """A token bucket shared by every API process: ``tokens`` left at ``updated_at`` (epoch seconds)."""

    __tablename__ = "rate_limit_buckets"

    bucket: Mapped[str] = mapped_column(String(300), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    full_at: Mapped[float] = mapped_column(Float, index=True)
    """When the bucket is full again: rows past it hold nothing and are pruned."""
    granted: Mapped[bool] = mapped_column(Boolean)


class ModelRun(Base):
    """One retraining run; ``activated`` marks the runs whose model was put into service.

    The API queues a run; a ``cxm worker`` claims it (``claimed_by``) and keeps ``heartbeat_at``
    fresh while it trains, so a run whose worker died is told apart from one still training.
    """

    __tablename__ = "model_runs"
    __table_args__ = (
        # One queued or running run at a time per kind, across processes, enforced by the database itself.
        _unique_where("uq_model_runs_one_active", "kind", "status IN ('queued', 'running')"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    model_version: Mapped[str | None] = mapped_column(String(200))
    path: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    activated: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    force: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column()


class Correction(Base):
    """An agent's correction of one field of a feedback item's analysis; the analysis itself is never changed.

    ``old_value`` is the effective value before (the latest correction, else the model's), ``model_value``
    what the stored analysis says: the pair the model-quality metric and retraining from corrections read.
    """

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id"), index=True)
    field: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONType)
    model_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    note: Mapped[str | None] = mapped_column(Text)


class AlertRule(Base):
    """An admin's alert rule: what to watch (``kind`` and its ``params``) and the webhook to call.

    ``secret`` signs every delivery (HMAC-SHA256); it is shown once, at creation or rotation.
    """

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    webhook_url: Mapped[str] = mapped_column(Text)
    payload_format: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_evaluated_at: Mapped[datetime | None] = mapped_column()


class Alert(Base):
    """One fired condition, unique by ``dedup_key``, and the state of its webhook delivery.

    ``pending`` alerts are sent when ``next_attempt_at`` is due (retries survive restarts);
    ``suppressed`` ones were already true when the rule first ran and are never sent.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    delivered_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)

    log: Mapped[list[AlertAttempt]] = relationship(order_by="AlertAttempt.id")


class AlertAttempt(Base):
    """The delivery log: one row per webhook call, with its HTTP status or error."""

    __tablename__ = "alert_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)
