"""All SQL lives here: services call these functions and never build queries themselves."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, case, cast, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from api.db.models import (
    OPEN_CASE_STATUSES,
    Alert,
    AlertAttempt,
    AlertRule,
    ApiKey,
    Case,
    CaseEvent,
    ChurnOutcome,
    Correction,
    Customer,
    Feedback,
    ModelRun,
    RateLimitBucket,
    RiskScore,
    Ticket,
    utcnow,
)


def ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


# Customers and feedback


def feedback_by_external_ids(session: Session, external_ids: Iterable[str]) -> dict[str, Feedback]:
    """The stored rows (with their tickets) of those ``external_ids`` that are taken."""
    ids = list(external_ids)
    found: dict[str, Feedback] = {}
    for start in range(0, len(ids), 500):
        rows = session.scalars(select(Feedback).options(selectinload(Feedback.ticket))
                               .where(Feedback.external_id.in_(ids[start : start + 500])))
        found.update({row.external_id: row for row in rows})
    return found


def upsert_customers(session: Session, attributes: dict[str, dict[str, Any]]) -> None:
    """Create missing customers and merge newer segment attributes into existing ones, marking them
    for scoring. One INSERT ... ON CONFLICT DO UPDATE merges in the database (JSONB ``||``, SQLite's
    ``json_patch``: the same for flat scalar segments), so concurrent ingests never lose each other's
    keys as a read-modify-write did; rows are taken in id order, so two batches cannot deadlock."""
    if not attributes:
        return
    table = Customer.__table__
    if session.get_bind().dialect.name == "postgresql":
        statement = postgresql.insert(table)
        merged = table.c.attributes.op("||")(statement.excluded.attributes)
    else:
        statement = sqlite.insert(table)
        merged = func.json_patch(table.c.attributes, statement.excluded.attributes)
    statement = statement.on_conflict_do_update(index_elements=[table.c.id], set_={
        "attributes": merged, "needs_scoring": True, "scoring_marks": table.c.scoring_marks + 1})
    session.execute(statement, [{"id": customer_id, "attributes": attrs}
                                for customer_id, attrs in sorted(attributes.items())])


def add_feedback(session: Session, feedback: Feedback, ticket: Ticket | None) -> None:
    session.add(feedback)
    if ticket is not None:
        feedback.ticket = ticket
    session.flush()


def _claimable(max_attempts: int, now: datetime):
    return and_(Feedback.status == "pending", Feedback.attempts < max_attempts,
                or_(Feedback.leased_until.is_(None), Feedback.leased_until <= now))


def feedback_to_analyse(session: Session, max_attempts: int, limit: int) -> list[Feedback]:
    """Pending rows no one holds a lease on (nor waits to retry), oldest first."""
    return list(session.scalars(select(Feedback).where(_claimable(max_attempts, utcnow()))
                                .order_by(Feedback.id).limit(limit)))


def claim_pending(session: Session, max_attempts: int, limit: int, until: datetime) -> dict[int, str | None]:
    """Lease up to ``limit`` claimable pending rows until ``until``: their id -> text. One UPDATE whose
    candidates are locked with FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent workers take
    disjoint rows without waiting; SQLite runs one writer at a time and the re-checked condition does it."""
    condition = _claimable(max_attempts, utcnow())
    # A CTE is evaluated once: as a plain IN (subquery) PostgreSQL may re-run it and take more than ``limit``.
    candidates = (select(Feedback.id).where(condition).order_by(Feedback.id).limit(limit)
                  .with_for_update(skip_locked=True).cte("claimable"))
    claimed = session.execute(update(Feedback).where(Feedback.id.in_(select(candidates.c.id)), condition)
                              .values(leased_until=until).returning(Feedback.id, Feedback.text)
                              .execution_options(synchronize_session=False))
    return dict(sorted(claimed.tuples()))


def pending_backlog(session: Session, bound: int) -> int:
    """Pending rows, counted up to ``bound + 1`` only: the check costs the same however deep the queue."""
    capped = select(Feedback.id).where(Feedback.status == "pending").limit(bound + 1).subquery()
    return int(session.scalar(select(func.count()).select_from(capped)) or 0)


def feedback_by_ids(session: Session, ids: Sequence[int]) -> list[Feedback]:
    return list(session.scalars(select(Feedback).where(Feedback.id.in_(list(ids))).order_by(Feedback.id)))


def requeue_failed(session: Session) -> int:
    result = session.execute(
        update(Feedback).where(Feedback.status == "failed").values(status="pending", attempts=0, leased_until=None)
    )
    return result.rowcount or 0


def mark_customers_for_scoring(session: Session, customer_ids: Iterable[str]) -> None:
    ids = sorted(set(customer_ids))
    if ids:
        session.execute(update(Customer).where(Customer.id.in_(ids))
                        .values(needs_scoring=True, scoring_marks=Customer.scoring_marks + 1))


def clear_scoring_marks(session: Session, seen: dict[str, int]) -> None:
    """Clear ``needs_scoring`` of customers still at the ``scoring_marks`` a flag run read: one
    marked again meanwhile (feedback analysed during the run) stays marked for the next run."""
    if seen:
        table = Customer.__table__
        session.connection().execute(
            update(table).where(table.c.id == bindparam("customer"), table.c.scoring_marks == bindparam("marks"))
            .values(needs_scoring=False),
            [{"customer": customer, "marks": marks} for customer, marks in seen.items()])


def get_customer(session: Session, customer_id: str) -> Customer | None:
    return session.get(Customer, customer_id)


def customer_feedback(session: Session, customer_ids: Sequence[str]) -> list[Feedback]:
    """Every feedback row (with its ticket) of these customers, newest first."""
    return list(
        session.scalars(
            select(Feedback)
            .options(selectinload(Feedback.ticket))
            .where(Feedback.customer_id.in_(list(customer_ids)))
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        )
    )


def customer_timeline(session: Session, customer_id: str, limit: int,
                      before: tuple[datetime, int] | None = None) -> list[Feedback]:
    """Up to ``limit`` feedback rows (with tickets) of one customer, newest first, older than the
    ``(created_at, id)`` keyset ``before`` when given."""
    query = select(Feedback).options(selectinload(Feedback.ticket)).where(Feedback.customer_id == customer_id)
    if before is not None:
        at, row_id = before
        query = query.where(or_(Feedback.created_at < at, and_(Feedback.created_at == at, Feedback.id < row_id)))
    return list(session.scalars(query.order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit)))


def customer_scores(session: Session, customer_id: str,
                    limit: int = 500) -> list[tuple[datetime, int | None, int | None, int | None]]:
    """``(created_at, nps, csat, ces)`` of one customer's newest ``limit`` rows that carry a score, newest first."""
    return [tuple(r) for r in session.execute(
        select(Feedback.created_at, Feedback.nps, Feedback.csat, Feedback.ces)
        .where(Feedback.customer_id == customer_id)
        .where(or_(Feedback.nps.is_not(None), Feedback.csat.is_not(None), Feedback.ces.is_not(None)))
        .order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit))]


def all_feedback(session: Session) -> list[Feedback]:
    """Every feedback row with its ticket (the history retraining learns from)."""
    return list(session.scalars(select(Feedback).options(selectinload(Feedback.ticket)).order_by(Feedback.id)))


def existing_customer_ids(session: Session, customer_ids: Iterable[str]) -> set[str]:
    ids = list(customer_ids)
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        found.update(session.scalars(select(Customer.id).where(Customer.id.in_(ids[start : start + 500]))))
    return found


def customers_to_score(session: Session, only_flagged: bool = True) -> list[Customer]:
    query = select(Customer).order_by(Customer.id)
    if only_flagged:
        query = query.where(Customer.needs_scoring.is_(True))
    return list(session.scalars(query))


# Churn outcomes


def churn_outcomes(session: Session, customer_ids: Iterable[str] | None = None) -> list[ChurnOutcome]:
    """The outcomes of these customers (None: of every customer)."""
    if customer_ids is None:
        return list(session.scalars(select(ChurnOutcome).order_by(ChurnOutcome.customer_id)))
    ids = list(customer_ids)
    found: list[ChurnOutcome] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.extend(session.scalars(select(ChurnOutcome).where(ChurnOutcome.customer_id.in_(chunk))))
    return found


def add_churn_outcome(session: Session, outcome: ChurnOutcome) -> None:
    session.add(outcome)


# Time windows


def _period(query, column, start: datetime | None, end: datetime | None):
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column < end)
    return query


# Risk and triage


def upsert_risk(session: Session, score: RiskScore) -> None:
    session.merge(score)


def get_risk(session: Session, customer_id: str) -> RiskScore | None:
    return session.get(RiskScore, customer_id)


def triage_queue(
    session: Session,
    *,
    tiers: Sequence[str],
    segments: dict[str, str],
    statuses: Sequence[str],
    assignee: str | None,
    min_probability: float | None,
    limit: int,
    offset: int,
    sort: str = "probability",
    after: tuple[float, str] | None = None,
) -> tuple[list[tuple[RiskScore, Customer, Case | None]], int]:
    """Customers with their current case, ranked by risk (``sort``: "probability"), oldest case first
    ("age") or newest feedback first ("feedback"); filters apply before paging. ``after`` (probability,
    customer id) starts the ranking below that row; the total counts every row the filters match."""
    newest = (
        select(Case.customer_id, func.max(Case.id).label("case_id"))
        .group_by(Case.customer_id)
        .subquery()
    )
    open_case = (
        select(Case.customer_id, Case.id.label("case_id"))
        .where(Case.status.in_(OPEN_CASE_STATUSES))
        .subquery()
    )
    case_id = func.coalesce(open_case.c.case_id, newest.c.case_id)
    query = (
        select(RiskScore, Customer, Case)
        .join(Customer, Customer.id == RiskScore.customer_id)
        .outerjoin(open_case, open_case.c.customer_id == RiskScore.customer_id)
        .outerjoin(newest, newest.c.customer_id == RiskScore.customer_id)
        .outerjoin(Case, Case.id == case_id)
    )
    if tiers:
        query = query.where(RiskScore.tier.in_(list(tiers)))
    if min_probability is not None:
        query = query.where(RiskScore.probability >= min_probability)
    for key, value in segments.items():
        # The cast makes numbers compare as text on SQLite too (JSON_EXTRACT returns them typed).
        query = query.where(cast(Customer.attributes[key].as_string(), String) == value)
    if statuses:
        wanted = [s for s in statuses if s != "none"]
        condition = Case.status.in_(wanted)
        if "none" in statuses:
            condition = condition | Case.id.is_(None)
        query = query.where(condition)
    if assignee is not None:
        query = query.where(Case.assignee == assignee)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    if after is not None:
        probability, customer_id = after
        query = query.where(or_(RiskScore.probability < probability,
                                and_(RiskScore.probability == probability, RiskScore.customer_id > customer_id)))
    order = [RiskScore.probability.desc(), RiskScore.customer_id]
    if sort == "age":
        order = [Case.opened_at.is_(None), Case.opened_at, *order]
    elif sort == "feedback":
        # Per ranked customer, an index lookup: grouping all feedback first took 2.2 s at 100,000 rows.
        last = (select(func.max(Feedback.created_at)).where(Feedback.customer_id == RiskScore.customer_id)
                .correlate(RiskScore).scalar_subquery())
        order = [last.desc().nulls_last(), *order]
    rows = session.execute(query.order_by(*order).limit(limit).offset(offset)).tuples()
    return list(rows), int(total or 0)


def latest_texts(session: Session, customer_ids: Sequence[str], per_customer: int) -> dict[str, list[Feedback]]:
    """The newest ``per_customer`` rows with text of each customer: ranked in the database, so a
    customer with thousands of rows costs no more memory than one with three."""
    found: dict[str, list[Feedback]] = {c: [] for c in customer_ids}
    newest = (Feedback.created_at.desc(), Feedback.id.desc())
    ranked = (select(Feedback.id, func.row_number().over(partition_by=Feedback.customer_id, order_by=newest)
                     .label("rank"))
              .where(Feedback.customer_id.in_(list(customer_ids)), Feedback.text.is_not(None)).subquery())
    rows = session.scalars(select(Feedback).join(ranked, ranked.c.id == Feedback.id)
                           .where(ranked.c.rank <= per_customer).order_by(*newest))
    for row in rows:
        found[row.customer_id].append(row)
    return found


# Cases


def open_case(session: Session, customer_id: str) -> Case | None:
    return session.scalar(
        select(Case).where(Case.customer_id == customer_id, Case.status.in_(OPEN_CASE_STATUSES))
    )


def customers_with_open_cases(session: Session) -> set[str]:
    return set(session.scalars(select(Case.customer_id).where(Case.status.in_(OPEN_CASE_STATUSES))))


def cases_opened_since(session: Session, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Case).where(Case.opened_at >= since)) or 0


def latest_event(session: Session) -> datetime | None:
    """The newest moment stored: feedback, a ticket's first response or its resolution."""
    moments = [session.scalar(select(func.max(column))) for column in
               (Feedback.created_at, Ticket.first_response_at, Ticket.resolved_at)]
    return max((m for m in moments if m is not None), default=None)


def customers_with_cases_closed_since(session: Session, since: datetime) -> set[str]:
    return set(session.scalars(select(Case.customer_id).where(Case.closed_at >= since)))


def get_case(session: Session, case_id: int) -> Case | None:
    return session.scalar(select(Case).options(selectinload(Case.events)).where(Case.id == case_id))


def update_case_if_status(session: Session, case_id: int, status: str, values: dict[str, Any]) -> bool:
    """Apply ``values`` to the case only while its status is still ``status`` (compare-and-set)."""
    result = session.execute(update(Case).where(Case.id == case_id, Case.status == status).values(**values))
    return result.rowcount == 1


def customer_cases(session: Session, customer_id: str) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.customer_id == customer_id).order_by(Case.id.desc())))


def add_case(session: Session, case: Case, event: CaseEvent) -> None:
    case.events.append(event)
    session.add(case)
    session.flush()


def add_case_event(session: Session, case: Case, event: CaseEvent) -> None:
    case.events.append(event)


# API keys


def add_api_key(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def api_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def list_api_keys(session: Session, after: int = 0, limit: int | None = None) -> list[ApiKey]:
    """Keys in id order, those after the id ``after`` (a cursor), at most ``limit``."""
    return list(session.scalars(select(ApiKey).where(ApiKey.id > after).order_by(ApiKey.id).limit(limit)))


def get_api_key(session: Session, key_id: int) -> ApiKey | None:
    return session.get(ApiKey, key_id)


# Rate limits shared by every process


def take_tokens(connection, bucket: str, *, rate: float, burst: float, take: float, need: float,
                now: float) -> tuple[bool, float]:
    """Refill the token bucket to ``now`` (``rate`` per second, at most ``burst``); when it holds at
    least ``need``, take ``take`` (never below 0). Whether it held enough, and what is left: one
    atomic upsert, so processes sharing the database spend one budget."""
    table = RateLimitBucket.__table__
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    fresh_granted = burst >= need
    fresh = max(0.0, burst - take) if fresh_granted else burst
    statement = insert(table).values(bucket=bucket, tokens=fresh, updated_at=now, granted=fresh_granted,
                                     full_at=now + (burst - fresh) / rate)
    grown = table.c.tokens + (now - table.c.updated_at) * rate
    refill = case((grown > burst, burst), else_=grown)
    granted = refill >= need
    left = case((granted, case((refill - take < 0, 0.0), else_=refill - take)), else_=refill)
    statement = statement.on_conflict_do_update(index_elements=[table.c.bucket], set_={
        "tokens": left, "updated_at": now, "full_at": now + (burst - left) / rate, "granted": granted,
    }).returning(table.c.granted, table.c.tokens)
    ok, tokens = connection.execute(statement).one()
    return bool(ok), float(tokens)


def prune_full_buckets(connection, now: float) -> None:
    """Buckets full again hold nothing a fresh one would not."""
    connection.execute(delete(RateLimitBucket).where(RateLimitBucket.full_at < now))


# Model training runs


def add_model_run(session: Session, run: ModelRun) -> ModelRun:
    session.add(run)
    session.flush()
    return run


def get_model_run(session: Session, run_id: int) -> ModelRun | None:
    return session.get(ModelRun, run_id)


def active_model_run(session: Session, kind: str) -> ModelRun | None:
    """The queued or running run of ``kind`` (at most one: a unique index)."""
    return session.scalar(select(ModelRun).where(ModelRun.kind == kind, ModelRun.status.in_(("queued", "running"))))


def claim_model_run(session: Session, kind: str, worker: str, now: datetime) -> ModelRun | None:
    """The queued run of ``kind``, now ``running`` for ``worker``; None when there is none or another took it.

    FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite has no row locks and ignores it); the compare-and-set
    UPDATE then makes the claim safe on both.
    """
    queued = session.scalar(select(ModelRun.id).where(ModelRun.kind == kind, ModelRun.status == "queued")
                            .order_by(ModelRun.id).limit(1).with_for_update(skip_locked=True))
    if queued is None:
        return None
    claimed = session.execute(update(ModelRun).where(ModelRun.id == queued, ModelRun.status == "queued")
                              .values(status="running", claimed_by=worker, started_at=now, heartbeat_at=now))
    return session.get(ModelRun, queued, populate_existing=True) if claimed.rowcount == 1 else None


def update_claimed_model_run(session: Session, run_id: int, worker: str, **values) -> bool:
    """Write ``values`` only while ``worker`` still holds the running run (a heartbeat, the outcome)."""
    result = session.execute(update(ModelRun).where(
        ModelRun.id == run_id, ModelRun.claimed_by == worker, ModelRun.status == "running").values(**values))
    return result.rowcount == 1


def list_model_runs(session: Session, limit: int, offset: int,
                    before: int | None = None) -> tuple[list[ModelRun], int]:
    """Latest first (those older than run ``before``, when given), and how many runs there are."""
    total = session.scalar(select(func.count()).select_from(ModelRun))
    query = select(ModelRun) if before is None else select(ModelRun).where(ModelRun.id < before)
    rows = session.scalars(query.order_by(ModelRun.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


def activated_model_runs(session: Session, kind: str) -> list[ModelRun]:
    """Runs whose model was put into service, latest first."""
    return list(session.scalars(
        select(ModelRun).where(ModelRun.kind == kind, ModelRun.activated.is_(True)).order_by(ModelRun.id.desc())
    ))


def fail_stale_model_runs(session: Session, stale_before: datetime, error: str, at: datetime) -> int:
    """Running runs without a heartbeat since ``stale_before``: their worker is gone, record them failed."""
    result = session.execute(
        update(ModelRun)
        .where(ModelRun.status == "running",
               (ModelRun.heartbeat_at.is_(None)) | (ModelRun.heartbeat_at < stale_before))
        .values(status="failed", error=error, finished_at=at)
    )
    return result.rowcount or 0


# Alerts


def add_alert_rule(session: Session, rule: AlertRule) -> AlertRule:
    session.add(rule)
    session.flush()
    return rule


def alert_rules(session: Session, enabled_only: bool = False) -> list[AlertRule]:
    query = select(AlertRule).order_by(AlertRule.id)
    return list(session.scalars(query.where(AlertRule.enabled.is_(True)) if enabled_only else query))


def get_alert_rule(session: Session, rule_id: int) -> AlertRule | None:
    return session.get(AlertRule, rule_id)


def delete_alert_rule(session: Session, rule_id: int) -> None:
    """The rule, its alerts and their delivery log."""
    alerts = select(Alert.id).where(Alert.rule_id == rule_id).scalar_subquery()
    session.execute(AlertAttempt.__table__.delete().where(AlertAttempt.alert_id.in_(alerts)))
    session.execute(Alert.__table__.delete().where(Alert.rule_id == rule_id))
    session.execute(AlertRule.__table__.delete().where(AlertRule.id == rule_id))


def add_alert(session: Session, values: dict[str, Any]) -> bool:
    """Insert an alert unless one with its ``dedup_key`` exists (also one a concurrent run just added)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(Alert.__table__).values(**values)
                 .on_conflict_do_nothing(index_elements=["dedup_key"]).returning(Alert.id))
    return session.execute(statement).scalar() is not None


def uncleared_alert_subjects(session: Session, rule_id: int) -> set[str]:
    return set(session.scalars(select(Alert.subject).where(Alert.rule_id == rule_id, Alert.cleared_at.is_(None))))


def clear_alerts(session: Session, rule_id: int, subjects: Iterable[str], at: datetime) -> None:
    """Record that the condition of these subjects' alerts stopped holding."""
    subjects = sorted(subjects)
    for start in range(0, len(subjects), 500):
        session.execute(update(Alert).where(Alert.rule_id == rule_id, Alert.cleared_at.is_(None),
                                            Alert.subject.in_(subjects[start:start + 500])).values(cleared_at=at))


def risk_scores_in_tier(session: Session, tier: str) -> list[RiskScore]:
    return list(session.scalars(select(RiskScore).where(RiskScore.tier == tier).order_by(RiskScore.customer_id)))


def open_cases_opened_before(session: Session, before: datetime) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.status.in_(OPEN_CASE_STATUSES), Case.opened_at < before)
                                .order_by(Case.id)))


def reasons_since(session: Session, start: datetime) -> list[tuple[datetime, Any, Any]]:
    """``(created_at, picked reasons, analysed reasons)`` of feedback since ``start``: only these parts
    of the stored JSON are read, not whole analyses."""
    query = select(Feedback.created_at, Feedback.survey["reasons"], Feedback.analysis["reasons"])
    return [tuple(row) for row in session.execute(query.where(Feedback.created_at >= start))]


def topics_since(session: Session, start: datetime) -> list[tuple[datetime, Any]]:
    """``(created_at, analysed topics)`` of feedback since ``start``."""
    query = select(Feedback.created_at, Feedback.analysis["topics"]).where(Feedback.created_at >= start)
    return [tuple(row) for row in session.execute(query)]


def nps_answers_since(session: Session, start: datetime) -> list[tuple[datetime, int, str, Any, Any, Any]]:
    """``(created_at, nps, channel, survey, segments, customer attributes)`` of NPS answers since ``start``."""
    query = (select(Feedback.created_at, Feedback.nps, Feedback.channel, Feedback.survey, Feedback.segments,
                    Customer.attributes).join(Customer, Customer.id == Feedback.customer_id)
             .where(Feedback.nps.is_not(None), Feedback.created_at >= start))
    return [tuple(row) for row in session.execute(query)]


def due_alert_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Pending alerts of enabled rules whose next delivery attempt is due, the longest waiting first."""
    query = (select(Alert.id).join(AlertRule, AlertRule.id == Alert.rule_id)
             .where(Alert.status == "pending", Alert.next_attempt_at <= now, AlertRule.enabled.is_(True))
             .order_by(Alert.next_attempt_at, Alert.id).limit(limit))
    return list(session.scalars(query))


def claim_alert(session: Session, alert_id: int, now: datetime, until: datetime) -> Alert | None:
    """The due alert, held until ``until`` for this process's delivery attempt (compare-and-set: of two
    processes, one gets it); None when another process took it or it is no longer due."""
    claimed = session.execute(update(Alert).where(Alert.id == alert_id, Alert.status == "pending",
                                                  Alert.next_attempt_at <= now).values(next_attempt_at=until))
    return session.get(Alert, alert_id, populate_existing=True) if claimed.rowcount == 1 else None


def add_alert_attempt(session: Session, attempt: AlertAttempt) -> None:
    session.add(attempt)


def list_alerts(session: Session, rule_id: int | None, status: str | None, limit: int,
                offset: int, before: int | None = None) -> tuple[list[Alert], int]:
    """Latest first (those older than alert ``before``, when given), each with its delivery log, and
    how many match the filters."""
    query = select(Alert)
    if rule_id is not None:
        query = query.where(Alert.rule_id == rule_id)
    if status is not None:
        query = query.where(Alert.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    if before is not None:
        query = query.where(Alert.id < before)
    rows = session.scalars(query.options(selectinload(Alert.log)).order_by(Alert.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


# Corrections


def add_correction(session: Session, correction: Correction) -> Correction:
    session.add(correction)
    session.flush()
    return correction


def get_feedback(session: Session, feedback_id: int) -> Feedback | None:
    return session.get(Feedback, feedback_id)


def latest_corrections(session: Session, feedback_ids: Sequence[int]) -> dict[int, dict[str, Correction]]:
    """Per feedback id, its latest correction of each field (fields never corrected are absent)."""
    out: dict[int, dict[str, Correction]] = {}
    if not feedback_ids:
        return out
    latest = (select(func.max(Correction.id)).where(Correction.feedback_id.in_(list(feedback_ids)))
              .group_by(Correction.feedback_id, Correction.field))
    for row in session.scalars(select(Correction).where(Correction.id.in_(latest))):
        out.setdefault(row.feedback_id, {})[row.field] = row
    return out


def list_corrections(session: Session, limit: int, before_id: int | None = None, feedback_id: int | None = None,
                     field: str | None = None) -> list[Correction]:
    """Newest first, keyset-paged on the id (``before_id``: the last id of the previous page)."""
    query = select(Correction).order_by(Correction.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Correction.id < before_id)
    if feedback_id is not None:
        query = query.where(Correction.feedback_id == feedback_id)
    if field is not None:
        query = query.where(Correction.field == field)
    return list(session.scalars(query))


def _latest_corrections(field: str | None = None):
    latest = select(func.max(Correction.id)).group_by(Correction.feedback_id, Correction.field)
    return latest if field is None else latest.where(Correction.field == field)


def corrected_feedback(session: Session, field: str | None = None) -> list[tuple[Correction, Feedback]]:
    """The latest correction of each corrected (feedback, field), with its feedback, oldest feedback first."""
    latest = _latest_corrections(field)
    query = (select(Correction, Feedback).join(Feedback, Feedback.id == Correction.feedback_id)
             .where(Correction.id.in_(latest)).order_by(Feedback.created_at, Feedback.id, Correction.field))
    return [(c, f) for c, f in session.execute(query)]


def correction_verdicts(session: Session, start: datetime | None,
                        end: datetime | None) -> Iterator[tuple[datetime, str, Any, Any]]:
    """``(feedback given at, field, model's value, agent's latest value)`` of each corrected
    (feedback, field) given in the window, streamed in chunks (only these four columns are read)."""
    query = (select(Feedback.created_at, Correction.field, Correction.model_value, Correction.new_value)
             .join(Feedback, Feedback.id == Correction.feedback_id).where(Correction.id.in_(_latest_corrections())))
    query = _period(query, Feedback.created_at, start, end)
    for at, field, model, agent in session.execute(query.execution_options(yield_per=1000)):
        yield at, field, model, agent
