"""Alert rules (one params model per kind), fired alerts with their delivery log, and run summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, ValidationError, model_validator

from api.schemas.common import InModel, LatestPage

AlertKind = Literal["high_tier_entry", "case_age", "topic_spike", "reason_spike", "nps_drop"]
AlertStatus = Literal["suppressed", "pending", "delivered", "failed"]
PayloadFormat = Literal["cxm", "slack"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
WebhookUrl = Annotated[HttpUrl, Field(description="Where alerts are POSTed: http or https only.")]


class _Params(InModel):
    model_config = ConfigDict(extra="forbid")


class HighTierEntryParams(_Params):
    """A customer enters the high risk tier (customers already there when the rule first runs are not alerted)."""


class CaseAgeParams(_Params):
    max_age_hours: float = Field(gt=0, le=24 * 365, description="An open case older than this is overdue.")


class SpikeParams(_Params):
    """Mentions of a reason (picked or found in the text) or of a top topic so far this period vs the same
    span of the previous periods."""

    period: Literal["day", "week"] = "week"
    baseline_periods: int = Field(4, ge=1, le=52, description="Previous periods whose mean rate is the baseline.")
    min_count: int = Field(10, ge=1, le=1_000_000, description="Fewest mentions this period that can be a spike.")
    min_ratio: float = Field(1.5, ge=1, le=1000, description="A spike is at least this many times the baseline "
                             "mean (a Poisson test alone calls a 10 % rise on thousands of mentions certain).")
    alpha: float = Field(0.01, gt=0, le=0.2, description="A spike needs a Poisson p-value below this.")
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        None, max_length=200, description="Only these reason ids or topic ids (unset: every one).")


class NpsDropParams(_Params):
    period: Literal["day", "week", "month"] = "week"
    segment: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="Compare each value of this segment (channel, a survey field, a feedback segment or a "
        "customer attribute, as the metrics' `by`); unset: all answers together.")
    min_answers: int = Field(30, ge=2, le=1_000_000, description="Fewest NPS answers in each period compared.")
    alpha: float = Field(0.05, gt=0, le=0.2, description="The drop needs a two-sided p-value below this.")
    min_drop: float = Field(0.0, ge=0, le=200, description="Smallest drop in NPS points worth an alert.")


PARAMS: dict[str, type[_Params]] = {
    "high_tier_entry": HighTierEntryParams, "case_age": CaseAgeParams, "topic_spike": SpikeParams,
    "reason_spike": SpikeParams, "nps_drop": NpsDropParams,
}


def checked_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` validated for ``kind``, defaults filled in (ValueError naming each bad field)."""
    try:
        return PARAMS[kind].model_validate(params).model_dump()
    except ValidationError as exc:
        problems = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
                             for e in exc.errors())
        raise ValueError(f"{kind}: {problems}") from None


class AlertRuleCreate(InModel):
    """``params`` by kind: high_tier_entry {}, case_age {max_age_hours}, topic_spike and reason_spike
    {period, baseline_periods, min_count, min_ratio, alpha, ids}, nps_drop {period, segment, min_answers, alpha, min_drop}."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: AlertKind
    params: dict[str, Any] = Field(default_factory=dict)
    webhook_url: WebhookUrl
    payload_format: PayloadFormat = Field(
        "cxm", description='cxm: the alert as JSON; slack: {"text": ...}, which Slack and Teams incoming webhooks take.')
    enabled: bool = True

    @model_validator(mode="after")
    def _params(self) -> AlertRuleCreate:
        self.params = checked_params(self.kind, self.params)
        return self


class AlertRuleUpdate(InModel):
    """Fields to change; ``params`` replaces the rule's params as a whole (its kind stays)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    params: dict[str, Any] | None = None
    webhook_url: WebhookUrl | None = None
    payload_format: PayloadFormat | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> AlertRuleUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give name, params, webhook_url, payload_format or enabled")
        return self


class AlertRulePublic(BaseModel):
    id: int
    name: str
    kind: AlertKind
    params: dict[str, Any]
    webhook: str = Field(description="The webhook's scheme and host only: its path may be a credential (Slack).")
    payload_format: PayloadFormat
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_evaluated_at: datetime | None


class AlertRuleCreated(AlertRulePublic):
    secret: str
    """Signs every delivery (X-Cxm-Signature); shown only now and on rotation."""


class AlertRuleList(BaseModel):
    items: list[AlertRulePublic]


class AlertAttemptPublic(BaseModel):
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; none when it could not be reached.")
    error: str | None
    duration_ms: float


class AlertPublic(BaseModel):
    id: int
    rule_id: int
    dedup_key: str = Field(description="What makes the condition one alert: rule, subject and period or episode.")
    subject: str
    title: str
    details: dict[str, Any]
    fired_at: datetime
    cleared_at: datetime | None = Field(description="When the condition stopped holding (high_tier_entry).")
    status: AlertStatus = Field(description="suppressed: already true when the rule first ran, never sent.")
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    log: list[AlertAttemptPublic] = Field(description="Every webhook call for this alert, oldest first.")


AlertPage = LatestPage[AlertPublic]


class AlertRunResult(BaseModel):
    rules: int = Field(description="Enabled rules evaluated.")
    fired: int = Field(description="New alerts (each condition fires once).")
    delivered: int
    retrying: int = Field(description="Calls that failed and will be retried with backoff.")
    failed: int = Field(description="Alerts given up after CXM_ALERTS_MAX_ATTEMPTS calls.")
