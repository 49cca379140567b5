"""Admin: alert rules (webhook, signing secret shown once), fired alerts with their delivery log, a run now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool

from api.db.models import AlertRule
from api.db import queries
from api.deps import Admin, Latest, RuntimeDep, SessionDep
from api.schemas.alerts import (
    AlertPage,
    AlertPublic,
    AlertRuleCreate,
    AlertRuleCreated,
    AlertRuleList,
    AlertRulePublic,
    AlertRuleUpdate,
    AlertRunResult,
    AlertStatus,
)
from api.schemas.common import ERROR_RESPONSES
from api.services import alerts

router = APIRouter(prefix="/v1/admin/alerts", tags=["alerts"],
                   responses={**ERROR_RESPONSES, 404: ERROR_RESPONSES[422] | {"description": "No such rule"}})

RuleId = Path(ge=1, le=2**31 - 1)


def _public(rule: AlertRule) -> AlertRulePublic:
    return AlertRulePublic(
        id=rule.id, name=rule.name, kind=rule.kind, params=rule.params, webhook=alerts.webhook_origin(rule.webhook_url),
        payload_format=rule.payload_format, enabled=rule.enabled, created_by=rule.created_by,
        created_at=rule.created_at, updated_at=rule.updated_at, last_evaluated_at=rule.last_evaluated_at)


@router.post("/rules", response_model=AlertRuleCreated, status_code=201,
             summary="Create an alert rule (its signing secret is shown once)")
def create_rule(payload: AlertRuleCreate, session: SessionDep, principal: Admin) -> AlertRuleCreated:
    rule, secret = alerts.create_rule(session, payload, principal.name)
    return AlertRuleCreated(**_public(rule).model_dump(), secret=secret)


@router.get("/rules", response_model=AlertRuleList, summary="List alert rules (no secrets)")
def list_rules(session: SessionDep, _: Admin) -> AlertRuleList:
    return AlertRuleList(items=[_public(r) for r in queries.alert_rules(session)])


@router.get("/rules/{rule_id}", response_model=AlertRulePublic, summary="One alert rule")
def get_rule(session: SessionDep, _: Admin, rule_id: int = RuleId) -> AlertRulePublic:
    return _public(alerts.get_rule(session, rule_id))


@router.patch("/rules/{rule_id}", response_model=AlertRulePublic, summary="Change a rule (or disable it)")
def update_rule(change: AlertRuleUpdate, session: SessionDep, _: Admin, rule_id: int = RuleId) -> AlertRulePublic:
    return _public(alerts.update_rule(session, rule_id, change))


@router.post("/rules/{rule_id}/secret", response_model=AlertRuleCreated,
             summary="Rotate a rule's signing secret (the new one is shown once)")
def rotate_secret(session: SessionDep, _: Admin, rule_id: int = RuleId) -> AlertRuleCreated:
    rule, secret = alerts.rotate_secret(session, rule_id)
    return AlertRuleCreated(**_public(rule).model_dump(), secret=secret)


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response,
               summary="Delete a rule with its alerts and delivery log (PATCH enabled=false keeps them)")
def delete_rule(session: SessionDep, _: Admin, rule_id: int = RuleId) -> Response:
    alerts.delete_rule(session, rule_id)
    return Response(status_code=204)


@router.get("", response_model=AlertPage, summary="Fired alerts with their delivery log, latest first")
def list_alerts(session: SessionDep, _: Admin, cursor: Latest,
                rule_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                status: AlertStatus | None = None) -> AlertPage:
    items, total = queries.list_alerts(session, rule_id, status, cursor.limit + 1, cursor.offset, cursor.before)
    return AlertPage.of(items, lambda a: AlertPublic.model_validate(a, from_attributes=True),
                        total=total, limit=cursor.limit, offset=cursor.offset)


@router.post("/run", response_model=AlertRunResult,
             summary="Evaluate every enabled rule and send the due alerts now (as `cxm alerts run`)")
async def run_now(runtime: RuntimeDep, _: Admin) -> AlertRunResult:
    done = await run_in_threadpool(alerts.run, runtime.sessions, runtime.settings)
    return AlertRunResult(rules=done.rules, fired=done.fired, **vars(done.delivery))
