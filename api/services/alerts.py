"""Alert rules, their evaluation (each condition fires once) and signed webhook delivery with retries.

A fired alert is a row with a unique ``dedup_key`` (rule, subject and period or episode), so a
second run, a re-score or a concurrent ``cxm worker`` finds it and fires nothing. Delivery state
(attempts, ``next_attempt_at``) lives on that row, so retries survive restarts; every call is logged.

Each delivery is a POST of a JSON body with ``X-Cxm-Timestamp`` (Unix seconds) and
``X-Cxm-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed by the rule's secret>``:
the receiver recomputes it and refuses stale timestamps, so a captured call cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker

from api.db import queries
from api.db.models import Alert, AlertAttempt, AlertRule
from api.errors import ApiError
from api.schemas.alerts import AlertRuleCreate, AlertRuleUpdate, checked_params
from api.services.metrics import _segment, period_key
from api.services.stats import difference, nps_estimate, spike_p_value
from api.settings import Settings

log = logging.getLogger("cxm.alerts")

DELIVERY_BATCH = 100
"""Most alerts one delivery pass sends; the rest wait for the next pass."""


# Rules


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_origin(url: str) -> str:
    """Scheme and host of a webhook: its path and query may be a credential (Slack's are)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def create_rule(session: Session, payload: AlertRuleCreate, actor: str) -> tuple[AlertRule, str]:
    """The stored rule and its signing secret (returned this once)."""
    secret = _new_secret()
    rule = queries.add_alert_rule(session, AlertRule(
        name=payload.name, kind=payload.kind, params=payload.params, webhook_url=str(payload.webhook_url),
        payload_format=payload.payload_format, secret=secret, enabled=payload.enabled, created_by=actor))
    session.commit()
    return rule, secret


def get_rule(session: Session, rule_id: int) -> AlertRule:
    rule = queries.get_alert_rule(session, rule_id)
    if rule is None:
        raise ApiError(404, "not_found", f"no alert rule {rule_id}")
    return rule


def update_rule(session: Session, rule_id: int, change: AlertRuleUpdate) -> AlertRule:
    rule = get_rule(session, rule_id)
    values = change.model_dump(exclude_unset=True, exclude_none=True)
    if "params" in values:
        try:
            values["params"] = checked_params(rule.kind, values["params"])
        except ValueError as exc:
            raise ApiError(422, "validation_error", str(exc)) from None
    if "webhook_url" in values:
        values["webhook_url"] = str(values["webhook_url"])
    for name, value in values.items():
        setattr(rule, name, value)
    rule.updated_at = datetime.now(timezone.utc)
    session.commit()
    return rule


def rotate_secret(session: Session, rule_id: int) -> tuple[AlertRule, str]:
    """A new signing secret for the rule (the old one stops signing at once), returned this once."""
    rule = get_rule(session, rule_id)
    rule.secret, rule.updated_at = _new_secret(), datetime.now(timezone.utc)
    session.commit()
    return rule, rule.secret


def delete_rule(session: Session, rule_id: int) -> None:
    """The rule with its alerts and delivery log (disable it instead to keep them)."""
    get_rule(session, rule_id)
    queries.delete_alert_rule(session, rule_id)
    session.commit()


# Conditions


@dataclass(frozen=True)
class Fired:
    key: str
    subject: str
    title: str
    details: dict


def period_start(moment: datetime, period: str) -> datetime:
    """The UTC day, ISO week (from Monday) or month that ``moment`` falls in."""
    day = moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _previous(start: datetime, period: str) -> datetime:
    return period_start(start - timedelta(days=1), period)


def _periods(now: datetime, period: str, count: int) -> list[datetime]:
    """Starts of the current period and the ``count`` before it, newest first."""
    starts = [period_start(now, period)]
    for _ in range(count):
        starts.append(_previous(starts[-1], period))
    return starts


def _index(moment: datetime, starts: list[datetime]) -> int:
    return next(i for i, start in enumerate(starts) if moment >= start)


def _high_tier_entry(session: Session, rule: AlertRule, now: datetime) -> list[Fired]:
    """Customers now in the high tier without an uncleared alert; alerts of customers who left it are cleared,
    so a customer who drops out and comes back fires again (the episode is the score's time)."""
    scores = queries.risk_scores_in_tier(session, "high")
    alerted = queries.uncleared_alert_subjects(session, rule.id)
    queries.clear_alerts(session, rule.id, alerted - {s.customer_id for s in scores}, now)
    return [Fired(f"{rule.id}:high:{s.customer_id}:{s.computed_at.isoformat()}", s.customer_id,
                  f"{s.customer_id} entered the high risk tier ({s.probability:.0%} chance of leaving)",
                  {"customer_id": s.customer_id, "probability": s.probability,
                   "reasons": (s.reasons or {}).get("items", []), "model_version": s.model_version})
            for s in scores if s.customer_id not in alerted]


def _case_age(session: Session, rule: AlertRule, now: datetime) -> list[Fired]:
    limit = rule.params["max_age_hours"]
    fired = []
    for case in queries.open_cases_opened_before(session, now - timedelta(hours=limit)):
        age = (now - case.opened_at).total_seconds() / 3600
        fired.append(Fired(f"{rule.id}:case:{case.id}", f"case {case.id}",
                           f"case {case.id} ({case.customer_id}) is {case.status} after {age:.0f} h (limit {limit:g} h)",
                           {"case_id": case.id, "customer_id": case.customer_id, "status": case.status,
                            "age_hours": round(age, 1), "max_age_hours": limit, "assignee": case.assignee}))
    return fired


def _mentions(session: Session, kind: str, start: datetime) -> list[tuple[datetime, dict[str, str]]]:
    """Each feedback row's moment and what it mentions, id to label: the reason ids it picked or its
    text was tagged with, or its top topic."""
    if kind == "reason_spike":
        return [(at, {r: r for r in {*(picked or []), *(r["id"] for r in analysed or [])}})
                for at, picked, analysed in queries.reasons_since(session, start)]
    found = []
    for at, topics in queries.topics_since(session, start):
        top = max(topics, key=lambda t: t["probability"]) if topics else None
        found.append((at, {str(top["id"]): top["label"]} if top else {}))
    return found


def _spike(session: Session, rule: AlertRule, now: datetime) -> list[Fired]:
    """Mentions so far this period against the same span (as many hours from the start) of each of the
    previous ``baseline_periods``, so a Wednesday is compared with Monday-to-Wednesday of earlier weeks.

    A spike needs at least ``min_count`` mentions, ``min_ratio`` times the baseline mean, and a Poisson
    p-value below ``alpha``: 3 against 1 is none, and neither is a 10 % rise on thousands of mentions,
    which a Poisson test alone would call certain. No alert while the baseline spans hold no feedback.
    """
    p = rule.params
    starts = _periods(now, p["period"], p["baseline_periods"])
    elapsed = now - starts[0]
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    labels: dict[str, str] = {}
    history = 0
    for at, mentioned in _mentions(session, rule.kind, starts[-1]):
        index = _index(at, starts)
        if index and at - starts[index] >= elapsed:
            continue
        history += index > 0
        for mention, label in mentioned.items():
            counts[mention][index] += 1
            labels[mention] = label
    if not history:
        return []
    what, current_key = rule.kind.removesuffix("_spike"), period_key(starts[0], p["period"])
    fired = []
    for mention, by_period in sorted(counts.items()):
        if p["ids"] is not None and mention not in p["ids"]:
            continue
        current, baseline = by_period[0], [by_period[i] for i in range(1, len(starts))]
        mean = sum(baseline) / len(baseline)
        if current < max(p["min_count"], p["min_ratio"] * mean):
            continue
        p_value = spike_p_value(current, baseline)
        if p_value >= p["alpha"]:
            continue
        fired.append(Fired(
            f"{rule.id}:{what}:{mention}:{current_key}", f"{what} {mention}",
            f"{what} '{labels[mention]}' spiked: {current} mentions so far in {current_key} vs {mean:.1f} in the "
            f"same span of the {len(baseline)} {p['period']}s before (p = {p_value:.2g})",
            {what: mention, "label": labels[mention], "period": current_key, "count": current,
             "baseline": baseline, "baseline_mean": round(mean, 3), "p_value": p_value,
             "span_hours": round(elapsed.total_seconds() / 3600, 2)}))
    return fired


def _nps_counts(scores: list[int]) -> tuple[int, int, int]:
    return sum(s >= 9 for s in scores), sum(7 <= s <= 8 for s in scores), sum(s <= 6 for s in scores)


def _nps_drop(session: Session, rule: AlertRule, now: datetime) -> list[Fired]:
    """NPS of each segment this period against the previous one: a drop of at least ``min_drop`` points
    with a z-test p-value below ``alpha``, both periods holding ``min_answers`` answers."""
    p = rule.params
    starts = _periods(now, p["period"], 1)
    answers: dict[str, list[list[int]]] = defaultdict(lambda: [[], []])
    for at, nps, channel, survey, segments, attributes in queries.nps_answers_since(session, starts[-1]):
        segment = _segment(p["segment"], channel, survey, segments, attributes) or "all"
        answers[segment][_index(at, starts)].append(nps)
    current_key, previous_key = period_key(starts[0], p["period"]), period_key(starts[1], p["period"])
    fired = []
    for segment, (current, previous) in sorted(answers.items()):
        if min(len(current), len(previous)) < p["min_answers"]:
            continue
        before, now_ = nps_estimate(*_nps_counts(previous)), nps_estimate(*_nps_counts(current))
        change = difference(before, now_)
        if change.delta > -p["min_drop"] or change.delta >= 0 or change.p_value >= p["alpha"]:
            continue
        where = "all answers" if p["segment"] is None else f"{p['segment']}={segment}"
        fired.append(Fired(
            f"{rule.id}:nps:{segment}:{current_key}", where,
            f"NPS of {where} dropped from {before.value:.0f} in {previous_key} to {now_.value:.0f} in {current_key} "
            f"(p = {change.p_value:.2g})",
            {"segment": p["segment"], "value": segment, "period": current_key, "previous_period": previous_key,
             "nps": round(now_.value, 2), "previous_nps": round(before.value, 2), "n": now_.n,
             "previous_n": before.n, "delta": round(change.delta, 2), "ci": [round(change.ci_low, 2),
                                                                                round(change.ci_high, 2)],
             "p_value": change.p_value}))
    return fired


CONDITIONS: dict[str, Callable[[Session, AlertRule, datetime], list[Fired]]] = {
    "high_tier_entry": _high_tier_entry, "case_age": _case_age, "topic_spike": _spike,
    "reason_spike": _spike, "nps_drop": _nps_drop,
}


def evaluate(session: Session, now: datetime | None = None) -> tuple[int, int]:
    """Evaluate every enabled rule at ``now``; (rules evaluated, new alerts queued for delivery).

    A high_tier_entry rule's first run records the customers already in the tier as ``suppressed``:
    the rule reports entries from then on, not the existing state.
    """
    now = now or datetime.now(timezone.utc)
    rules, fired = queries.alert_rules(session, enabled_only=True), 0
    for rule in rules:
        baseline = rule.kind == "high_tier_entry" and rule.last_evaluated_at is None
        for found in CONDITIONS[rule.kind](session, rule, now):
            added = queries.add_alert(session, {
                "rule_id": rule.id, "dedup_key": found.key, "subject": found.subject[:300], "title": found.title,
                "details": found.details, "fired_at": now, "status": "suppressed" if baseline else "pending",
                "attempts": 0, "next_attempt_at": None if baseline else now})
            fired += added and not baseline
        rule.last_evaluated_at = now
        session.commit()
    return len(rules), fired


# Delivery


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"<timestamp>." + body`` (what X-Cxm-Signature carries)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def payload(rule: AlertRule, alert: Alert) -> dict:
    if rule.payload_format == "slack":
        return {"text": f"cxm alert ({rule.name}): {alert.title}"}
    return {"id": alert.id, "dedup_key": alert.dedup_key, "fired_at": alert.fired_at.isoformat(),
            "rule": {"id": rule.id, "name": rule.name, "kind": rule.kind},
            "subject": alert.subject, "title": alert.title, "details": alert.details}


@dataclass
class Delivery:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def _send(client: httpx.Client, rule: AlertRule, alert: Alert) -> tuple[int | None, str | None]:
    """One signed POST: (HTTP status, error); never raises for the receiver's or the network's faults."""
    body = json.dumps(payload(rule, alert), separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "cxm-alerts",
               "X-Cxm-Alert-Id": str(alert.id), "X-Cxm-Timestamp": timestamp,
               "X-Cxm-Signature": signature(rule.secret, timestamp, body)}
    try:
        response = client.post(rule.webhook_url, content=body, headers=headers)
    except httpx.HTTPError as exc:  # the message names the failure, not the URL (which may be a credential)
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def deliver_due(session: Session, settings: Settings, now: datetime | None = None) -> Delivery:
    """Send every due alert once. A failed call is retried after CXM_ALERTS_RETRY_BASE_S, doubling each
    time up to CXM_ALERTS_RETRY_MAX_S, until CXM_ALERTS_MAX_ATTEMPTS calls; each call is logged."""
    now = now or datetime.now(timezone.utc)
    done = Delivery()
    lease = now + timedelta(seconds=settings.alerts_timeout_s + 60)
    with httpx.Client(timeout=settings.alerts_timeout_s, follow_redirects=False) as http:
        for alert_id in queries.due_alert_ids(session, now, DELIVERY_BATCH):
            alert = queries.claim_alert(session, alert_id, now, lease)
            session.commit()
            if alert is None:
                continue
            rule = queries.get_alert_rule(session, alert.rule_id)
            started = time.perf_counter()
            status_code, error = _send(http, rule, alert)
            queries.add_alert_attempt(session, AlertAttempt(
                alert_id=alert.id, at=now, status_code=status_code, error=error,
                duration_ms=round((time.perf_counter() - started) * 1000, 1)))
            alert.attempts += 1
            alert.last_error = error
            if error is None:
                alert.status, alert.delivered_at, alert.next_attempt_at = "delivered", now, None
                done.delivered += 1
            elif alert.attempts >= settings.alerts_max_attempts:
                alert.status, alert.next_attempt_at = "failed", None
                done.failed += 1
                log.warning("alert %s (rule %s) not delivered after %d attempts: %s",
                            alert.id, rule.id, alert.attempts, error)
            else:
                wait = min(settings.alerts_retry_base_s * 2 ** (alert.attempts - 1), settings.alerts_retry_max_s)
                alert.next_attempt_at = now + timedelta(seconds=wait)
                done.retrying += 1
            session.commit()
    return done


@dataclass
class AlertRun:
    rules: int
    fired: int
    delivery: Delivery


def run(sessions: sessionmaker, settings: Settings, now: datetime | None = None) -> AlertRun:
    """Evaluate every enabled rule, then send the due alerts (what `cxm alerts run` and the worker do)."""
    with sessions() as session:
        rules, fired = evaluate(session, now)
        delivery = deliver_due(session, settings, now)
    if fired or delivery.delivered or delivery.retrying or delivery.failed:
        log.info("alerts: %d fired, %d delivered, %d retrying, %d failed",
                 fired, delivery.delivered, delivery.retrying, delivery.failed)
    return AlertRun(rules, fired, delivery)
