"""Dashboard aggregations done by the database (PostgreSQL and SQLite alike): sums per period and
segment for the CX metrics, counts per period and topic for topic trends.

Rows never leave the database: a request reads one row per group, whatever the table's size. The
period and segment expressions are SQL twins of ``services.metrics.period_key`` and
``services.metrics._segment`` (tests compare both on random data).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, Integer, String, and_, case, cast, func, literal_column, null, select
from sqlalchemy.orm import Session

from api.db.models import Customer, Feedback, Ticket

_PG_PERIOD = {"day": "YYYY-MM-DD", "week": 'IYYY-"W"IW', "month": "YYYY-MM", "quarter": 'YYYY-"Q"Q', "year": "YYYY"}
_PG_TRUNC = {"day": "day", "week": "week", "month": "month"}


@dataclass
class MetricSums:
    """One (period, segment) group: ``n`` values, their sum and sum of squares, NPS bands, distinct customers."""

    period: str
    segment: str | None
    n: int
    total: float
    squares: float
    promoters: int
    passives: int
    detractors: int
    customers: int


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def period_key(column, period: str, dialect: str):
    """The period of a UTC timestamp as ``metrics.period_key`` writes it (ISO weeks: 2025-W19)."""
    if period == "all":
        return literal_column("'all'")
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), literal_column(f"'{_PG_PERIOD[period]}'"))
    if period == "week":
        # The ISO week's year and number are those of its Thursday.
        thursday = func.date(column, literal_column("'-3 days'"), literal_column("'weekday 4'"))
        number = (cast(func.strftime(literal_column("'%j'"), thursday), Integer) - 1) // 7 + 1
        return func.printf(literal_column("'%s-W%02d'"), func.strftime(literal_column("'%Y'"), thursday), number)
    if period == "quarter":
        quarter = (cast(func.strftime(literal_column("'%m'"), column), Integer) + 2) // 3
        return func.printf(literal_column("'%s-Q%d'"), func.strftime(literal_column("'%Y'"), column), quarter)
    fmt = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[period]
    return func.strftime(literal_column(f"'{fmt}'"), column)


def period_bucket(column, period: str, dialect: str):
    """What rows are grouped by for ``period``: on PostgreSQL the period's first moment (``date_trunc``
    is cheap per row; :func:`period_label` writes the key once per group), on SQLite the key itself."""
    if dialect == "postgresql" and period != "all":
        return func.date_trunc(literal_column(f"'{period}'"), func.timezone("UTC", column))
    return period_key(column, period, dialect)


def period_label(bucket, period: str, dialect: str):
    """The key ``metrics.period_key`` writes, of a :func:`period_bucket`."""
    if dialect == "postgresql" and period != "all":
        return func.to_char(bucket, literal_column(f"'{_PG_PERIOD[period]}'"))
    return bucket


def start_bucket(column, period: str, dialect: str):
    """What rows are grouped by for topic trends: the first moment of their day, ISO week (Monday) or
    month; written by :func:`start_label` as pandas writes it (2025-05-05 00:00:00)."""
    if dialect == "postgresql":
        return func.date_trunc(literal_column(f"'{_PG_TRUNC[period]}'"), func.timezone("UTC", column))
    modifiers = {"day": [], "week": ["'-6 days'", "'weekday 1'"], "month": ["'start of month'"]}[period]
    return func.date(column, *(literal_column(m) for m in modifiers)).op("||")(literal_column("' 00:00:00'"))


def start_label(bucket, dialect: str):
    if dialect == "postgresql":
        return func.to_char(bucket, literal_column("'YYYY-MM-DD \"00:00:00\"'"))
    return bucket


def json_text(column, key: str, dialect: str):
    """``str()`` of the JSON value under ``key`` as Python would print it (True, None, 5, 2.5, text);
    NULL when the column is NULL or has no such key."""
    if dialect == "postgresql":
        element = column[key]
        kind = func.jsonb_typeof(element)
        value = column[key].as_string()
        return case((kind == "boolean", func.initcap(value)), (kind == "null", "None"), else_=value)
    path = '$."' + key + '"'
    kind = func.json_type(column, path)
    return case((kind == "true", "True"), (kind == "false", "False"), (kind == "null", "None"),
                else_=cast(func.json_extract(column, path), String))


def _hours(later, earlier, dialect: str):
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _observations(session: Session, metric: str, period: str, by: str | None,
                  start: datetime | None, end: datetime | None):
    """One row per observation of ``metric`` in the window: period (a :func:`period_bucket`), segment,
    customer, value, raw score, and the feedback row it came from."""
    dialect = _dialect(session)
    if metric in ("nps", "csat", "ces"):
        score = getattr(Feedback, metric)
        value = {"nps": case((score >= 9, 100), (score <= 6, -100), else_=0),
                 "csat": case((score >= 4, 100), else_=0), "ces": score}[metric]
        moment, customer, feedback = Feedback.created_at, Feedback.customer_id, Feedback.id
        query = select().select_from(Feedback).where(score.is_not(None))
    else:
        score = cast(null(), Integer)
        moment, customer, feedback = Ticket.opened_at, Ticket.customer_id, Ticket.feedback_id
        query = select().select_from(Ticket)
        if by is not None:
            query = query.join(Feedback, Feedback.id == Ticket.feedback_id)
        if metric == "frt":
            value = _hours(Ticket.first_response_at, Ticket.opened_at, dialect)
            query = query.where(Ticket.first_response_at.is_not(None))
        elif metric == "art":
            value = _hours(Ticket.resolved_at, Ticket.opened_at, dialect)
            query = query.where(Ticket.resolved_at.is_not(None))
        else:
            value = case((Ticket.contacts == 1, 100), else_=0)
            query = query.where(Ticket.resolved_at.is_not(None), Ticket.contacts.is_not(None))
    if by is None:
        segment = cast(null(), String)
    elif by == "channel":
        segment = Feedback.channel
    else:
        query = query.join(Customer, Customer.id == customer)
        segment = func.coalesce(json_text(Feedback.survey, by, dialect), json_text(Feedback.segments, by, dialect),
                                json_text(Customer.attributes, by, dialect), "unknown")
    if start is not None:
        query = query.where(moment >= start)
    if end is not None:
        query = query.where(moment < end)
    return query.add_columns(period_bucket(moment, period, dialect).label("period"), segment.label("segment"),
                             customer.label("customer"), cast(value, Float).label("value"),
                             score.label("score"), feedback.label("feedback_id")).subquery("observations")


def metric_sums(session: Session, metric: str, period: str, by: str | None,
                start: datetime | None, end: datetime | None) -> list[MetricSums]:
    """Per period (and ``by`` segment): count, sum, sum of squares, NPS bands; distinct customers when grouped."""
    rows = _observations(session, metric, period, by, start, end)
    customers = func.count(rows.c.customer.distinct()) if by is not None else literal_column('0')
    query = (select(period_label(rows.c.period, period, _dialect(session)), rows.c.segment, func.count(),
                    func.sum(rows.c.value),
                    func.sum(rows.c.value * rows.c.value), func.sum(case((rows.c.score >= 9, 1), else_=0)),
                    func.sum(case((and_(rows.c.score >= 7, rows.c.score <= 8), 1), else_=0)),
                    func.sum(case((rows.c.score <= 6, 1), else_=0)), customers)
             .group_by(rows.c.period, rows.c.segment))
    return [MetricSums(period, segment, int(n), float(total), float(squares), int(p or 0), int(pa or 0),
                       int(d or 0), int(c)) for period, segment, n, total, squares, p, pa, d, c
            in session.execute(query)]


def _newest(session: Session, query, limit: int) -> tuple[list[Feedback], int]:
    """The newest ``limit`` feedback rows of ``query``, and how many it selects."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit))
    return list(rows), int(total or 0)


def metric_feedback(session: Session, metric: str, period: str, key: str, by: str | None,
                    start: datetime | None, end: datetime | None, limit: int, *,
                    segments: Collection[str] | None = None, exclude: bool = False) -> tuple[list[Feedback], int]:
    """The feedback rows behind period ``key`` of :func:`metric_sums` whose segment is in ``segments``
    (not in them: ``exclude``; None: every segment): the newest ``limit``, and how many there are."""
    rows = _observations(session, metric, period, by, start, end)
    ids = select(rows.c.feedback_id).where(period_label(rows.c.period, period, _dialect(session)) == key)
    if segments is not None:
        ids = ids.where(rows.c.segment.not_in(segments) if exclude else rows.c.segment.in_(segments))
    return _newest(session, select(Feedback).where(Feedback.id.in_(ids)), limit)


def small_segment_customers(session: Session, metric: str, period: str, by: str,
                            start: datetime | None, end: datetime | None, min_customers: int) -> dict[str, int]:
    """Per period: the distinct customers of its segments with fewer than ``min_customers`` each, together."""
    rows = _observations(session, metric, period, by, start, end)
    base = select(rows).cte("observed")
    cells = (select(base.c.period, base.c.segment).group_by(base.c.period, base.c.segment)
             .having(func.count(base.c.customer.distinct()) < min_customers).subquery("small"))
    query = (select(period_label(base.c.period, period, _dialect(session)), func.count(base.c.customer.distinct()))
             .join(cells, and_(cells.c.period == base.c.period, cells.c.segment == base.c.segment))
             .group_by(base.c.period))
    return {period: int(count) for period, count in session.execute(query)}


# Topics


def _analysed(query, start: datetime | None, end: datetime | None):
    query = query.where(Feedback.topic_id.is_not(None))
    if start is not None:
        query = query.where(Feedback.created_at >= start)
    if end is not None:
        query = query.where(Feedback.created_at < end)
    return query


def latest_analysed(session: Session, start: datetime | None, end: datetime | None) -> datetime | None:
    """When the newest analysed feedback in the window was given (one step down the analysed index)."""
    return session.scalar(_analysed(select(func.max(Feedback.created_at)), start, end))


def topic_counts(session: Session, start: datetime | None,
                 end: datetime | None) -> list[tuple[int, str, int, float | None]]:
    """``(topic_id, label, count, mean sentiment)`` of analysed feedback in the window."""
    query = _analysed(select(Feedback.topic_id, Feedback.topic_label, func.count(), func.avg(Feedback.sentiment_score)),
                      start, end).group_by(Feedback.topic_id, Feedback.topic_label)
    return [(int(t), str(label), int(n), mean) for t, label, n, mean in session.execute(query)]


def topic_period_counts(session: Session, period: str, start: datetime | None,
                        end: datetime | None) -> list[tuple[str, int, str, int, float | None]]:
    """``(period start, topic_id, label, count, mean sentiment)`` of analysed feedback per period and topic
    (the label: the greatest stored under that id in the period; they differ only across a refit)."""
    dialect = _dialect(session)
    rows = _analysed(select(start_bucket(Feedback.created_at, period, dialect).label("period"),
                            Feedback.topic_id, Feedback.topic_label, Feedback.sentiment_score), start, end).subquery()
    query = (select(start_label(rows.c.period, dialect), rows.c.topic_id, func.max(rows.c.topic_label), func.count(),
                    func.avg(rows.c.sentiment_score)).group_by(rows.c.period, rows.c.topic_id))
    return [(str(p), int(t), str(label), int(n), mean) for p, t, label, n, mean in session.execute(query)]


def topic_feedback(session: Session, topic_id: int, start: datetime, end: datetime,
                   limit: int) -> tuple[list[Feedback], int]:
    """The newest ``limit`` analysed rows in ``[start, end)`` whose top topic is ``topic_id`` (the rows
    :func:`topic_period_counts` counts), and how many there are."""
    return _newest(session, _analysed(select(Feedback), start, end).where(Feedback.topic_id == topic_id), limit)


# Sentiment


def sentiment_counts(session: Session, start: datetime | None,
                     end: datetime | None) -> list[tuple[str, str | None, str | None, int, float | None]]:
    """``(channel, language, label, count, mean score)`` of analysed feedback in the window, from the
    analysis' own columns (one pass serves both the channel and the language view)."""
    columns = (Feedback.channel, Feedback.language, Feedback.sentiment_label)
    query = _analysed(select(*columns, func.count(), func.avg(Feedback.sentiment_score)), start, end)
    return [tuple(r) for r in session.execute(query.group_by(*columns))]


def sentiment_feedback(session: Session, start: datetime | None, end: datetime | None, *, limit: int,
                       channel: str | None = None, language: str | None = None,
                       sentiment: str | None = None) -> tuple[list[Feedback], int]:
    """The newest ``limit`` analysed rows with text in the window of the given channel, language and
    sentiment label (the rows :func:`sentiment_counts` counts), and how many there are."""
    query = _analysed(select(Feedback), start, end).where(Feedback.text.is_not(None))
    if channel is not None:
        query = query.where(Feedback.channel == channel)
    if language is not None:
        query = query.where(Feedback.language == language)
    if sentiment is not None:
        query = query.where(Feedback.sentiment_label == sentiment)
    return _newest(session, query, limit)
