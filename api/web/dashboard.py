"""The viewer's dashboard: NPS/CSAT/CES by period and segment, sentiment by channel and language,
topic trends and emerging topics, drill-downs to verbatims and the current view as CSV.

Every number comes from the services the API answers with (``metrics.compute``, ``topics``), for
the same filters, so the page and ``GET /v1/metrics/...`` agree."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.schemas.metrics import MetricPublic
from api.schemas.topics import EmergingTopics, TopicTrends
from api.services import dashboard, metrics, topics
from api.settings import Settings
from api.tables import csv_safe
from api.web import charts
from api.web.pages import PageError, ViewerUser, render
from api.deps import RuntimeDep, SessionDep

router = APIRouter(prefix="/app", include_in_schema=False)

METRICS = {"nps": (-100.0, 100.0), "csat": (0.0, 100.0), "ces": (1.0, 7.0)}
PERIODS = ("week", "month", "quarter", "year")
BREAKDOWNS = ("channel", "journey_stage", "touchpoint", "survey_type")
"""Offered in the breakdown's list; any customer segment attribute (plan, region, ...) may be typed."""
SEGMENT_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
TOPIC_COLUMNS, TOPIC_ROWS = 6, 8
EMERGING_BASELINE, EMERGING_MIN_COUNT = 3, 5


@dataclass
class View:
    """The dashboard's filters, validated; ``errors`` says which inputs were not understood."""

    metric: str = "nps"
    period: str = "month"
    by: str = ""
    start: str = ""
    end: str = ""
    errors: tuple[str, ...] = ()

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        return _day(self.start), _day(self.end)

    @property
    def topic_period(self) -> str:
        """Topic trends come by day, week or month: a quarter or a year shows months."""
        return self.period if self.period == "week" else "month"

    def params(self, **change) -> dict[str, str]:
        values = {"metric": self.metric, "period": self.period, "by": self.by, "start": self.start,
                  "end": self.end, **change}
        return {k: v for k, v in values.items() if v not in ("", None)}

    def url(self, path: str, **change) -> str:
        return f"{path}?{urlencode(self.params(**change))}"


def _day(value: str) -> datetime | None:
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc) if value else None


def read_view(metric: str, period: str, by: str, start: str, end: str) -> View:
    errors = []
    if metric not in METRICS:
        errors.append(f"Metric {metric!r} is not one of {', '.join(METRICS)}.")
        metric = "nps"
    if period not in PERIODS:
        errors.append(f"Period {period!r} is not one of {', '.join(PERIODS)}.")
        period = "month"
    by = by.strip()
    if by and not SEGMENT_NAME.fullmatch(by):
        errors.append(f"Breakdown {by[:80]!r} is not a segment name (letters, digits, _ . -).")
    dates = []
    for name, value in (("From", start.strip()), ("Until", end.strip())):
        try:
            dates.append(_day(value))
        except ValueError:
            errors.append(f"{name} {value[:40]!r} is not a date (YYYY-MM-DD).")
    if len(dates) == 2 and all(dates) and dates[0] >= dates[1]:
        errors.append("From must be before Until.")
    return View(metric, period, by, start.strip(), end.strip(), tuple(errors))


def _figures(session: Session, settings: Settings, view: View,
             topic_periods: int | None) -> tuple[MetricPublic, list, list, TopicTrends, EmergingTopics]:
    """The view's figures; topic trends of its latest ``topic_periods`` periods (None: all of them)."""
    start, end = view.window
    result = metrics.compute(session, view.metric, view.period, view.by or None, start, end, settings.min_group_size)
    sentiment = dashboard.sentiment_by(session, start, end)
    # Emerging topics compare the latest periods of the whole history, whatever the window.
    history = topics.recent_trend_table(session, view.topic_period, max(topic_periods or 0, EMERGING_BASELINE + 1),
                                        None, None)
    if topic_periods is None:
        window = topics.trend_table(session, view.topic_period, start, end)
    elif start is None and end is None:
        window = history
    else:
        window = topics.recent_trend_table(session, view.topic_period, topic_periods, start, end)
    return (result, sentiment["channel"], sentiment["language"], topics.trends_of(window, view.topic_period),
            topics.emerging_of(history, view.topic_period, EMERGING_BASELINE, EMERGING_MIN_COUNT))


def _topic_table(trends: TopicTrends) -> tuple[list[str], list[tuple[int, str, dict]]]:
    """The latest periods as columns and the most frequent topics in them as rows (cells by period)."""
    periods = sorted({p.period for p in trends.items})[-TOPIC_COLUMNS:]
    totals: dict[tuple[int, str], int] = {}
    cells: dict[tuple[int, str], dict] = {}
    for p in trends.items:
        if p.period in periods:
            totals[(p.topic_id, p.label)] = totals.get((p.topic_id, p.label), 0) + p.count
            cells.setdefault((p.topic_id, p.label), {})[p.period] = p
    top = sorted(totals, key=lambda k: (k[0] == topics.NO_TOPIC, -totals[k], k[0]))[:TOPIC_ROWS]
    return periods, [(tid, label, cells[(tid, label)]) for tid, label in top]


@router.get("/dashboard")
def dashboard_page(request: Request, session: SessionDep, runtime: RuntimeDep, user: ViewerUser,
                   metric: str = "nps", period: str = "month", by: str = "", start: str = "",
                   end: str = "") -> Response:
    view = read_view(metric, period, by, start, end)
    if view.errors:
        return render(request, "dashboard.html", user, 422, view=view, **_choices())
    result, channels, languages, trends, emerging = _figures(session, runtime.settings, view, TOPIC_COLUMNS)
    low, high = METRICS[view.metric]

    def metric_link(g) -> str:
        return view.url("/app/dashboard/verbatims", kind="metric", key=g.period, segment=g.segment or "")

    def sentiment_link(by_: str):
        return lambda group, label: view.url("/app/dashboard/verbatims", kind="sentiment", group_by=by_,
                                             group=group, sentiment=label)

    periods, topic_rows = _topic_table(trends)
    return render(request, "dashboard.html", user, view=view, result=result, metric_link=metric_link,
                  chart=charts.metric_bars(result.groups, low, high, view.metric.upper(), metric_link),
                  channels=charts.sentiment_bars(channels, dashboard.SENTIMENTS, sentiment_link("channel")),
                  languages=charts.sentiment_bars(languages, dashboard.SENTIMENTS, sentiment_link("language")),
                  topic_periods=periods, topic_rows=topic_rows, emerging=emerging,
                  has_topics=any(p.topic_id != topics.NO_TOPIC for p in trends.items), **_choices())


def _choices() -> dict:
    return {"metrics": METRICS, "periods": PERIODS, "breakdowns": BREAKDOWNS}


@router.get("/dashboard/verbatims")
def verbatims(request: Request, session: SessionDep, runtime: RuntimeDep, user: ViewerUser, kind: str,
              metric: str = "nps", period: str = "month", by: str = "", start: str = "", end: str = "",
              key: str = "", segment: str = "", topic: int | None = None, group_by: str = "", group: str = "",
              sentiment: str = "") -> Response:
    """The verbatims behind a bar, a topic or a sentiment share, as stored (redacted)."""
    view = read_view(metric, period, by, start, end)
    if view.errors:
        raise PageError(422, " ".join(view.errors))
    low, high = view.window
    try:
        if kind == "metric":
            found = dashboard.metric_verbatims(session, view.metric, view.period, key, view.by or None,
                                               segment if view.by else None, low, high,
                                               runtime.settings.min_group_size)
            title = f"{view.metric.upper()} answers, {key}" + (f", {view.by} {segment}" if view.by else "")
        elif kind == "topic" and topic is not None:
            found = dashboard.topic_verbatims(session, topic, view.topic_period, key)
            title = f"Topic {topic}, {key}"
        elif kind == "sentiment" and group_by in ("channel", "language"):
            found = dashboard.sentiment_verbatims(session, group_by, group, sentiment or None, low, high)
            title = f"{(sentiment or 'all').capitalize()} feedback, {group_by} {group}"
        else:
            raise ValueError(kind)
    except ValueError:
        raise PageError(422, "This drill-down link is incomplete or malformed: go back to the dashboard "
                        "and click a bar or a topic.") from None
    return render(request, "verbatims.html", user, title=title, found=found, view=view, metric=view.metric)


@router.get("/dashboard.csv")
def dashboard_csv(session: SessionDep, runtime: RuntimeDep, _: ViewerUser, metric: str = "nps",
                  period: str = "month", by: str = "", start: str = "", end: str = "") -> Response:
    """The figures of the current view, one row each, in long form; cells a spreadsheet would run are quoted."""
    view = read_view(metric, period, by, start, end)
    if view.errors:
        raise PageError(422, " ".join(view.errors))
    # The export holds every period of the window.
    result, channels, languages, trends, emerging = _figures(session, runtime.settings, view, None)
    rows = [{"section": view.metric, "period": g.period, "group": g.segment, "label": "", "value": g.value,
             "margin_of_error": g.margin_of_error, "n": g.n} for g in result.groups]
    for name, groups in (("sentiment_by_channel", channels), ("sentiment_by_language", languages)):
        rows += [{"section": name, "period": "", "group": g.group, "label": label, "value": round(g.share(label), 4),
                  "margin_of_error": None, "n": g.n} for g in groups for label in dashboard.SENTIMENTS]
    rows += [{"section": "topic_share", "period": p.period, "group": p.topic_id, "label": p.label,
              "value": p.share, "margin_of_error": None, "n": p.count} for p in trends.items]
    rows += [{"section": "emerging_topic_jump", "period": e.period, "group": e.topic_id, "label": e.label,
              "value": e.jump, "margin_of_error": None, "n": e.count} for e in emerging.items]
    frame = pd.DataFrame(rows, columns=["section", "period", "group", "label", "value", "margin_of_error", "n"])
    buffer = io.StringIO()
    csv_safe(frame).to_csv(buffer, index=False)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="cxm-dashboard-{stamp}.csv"'})
