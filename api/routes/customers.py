"""The triage queue and customer profiles (agents)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Agent, SessionDep
from api.errors import ApiError
from api.schemas.common import ERROR_RESPONSES
from api.schemas.customers import AtRiskPage, CustomerProfile, RiskTier
from api.services import customers

router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=ERROR_RESPONSES)

QueueStatus = Literal["open", "acknowledged", "contacted", "resolved", "dismissed", "none"]


def _segments(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, wanted = value.partition(":")
        if not sep or not key:
            raise ApiError(422, "validation_error", f"segment filter {value!r} must be key:value, e.g. region:north")
        out[key] = wanted
    return out


@router.get("/at-risk", response_model=AtRiskPage, summary="Triage queue: customers ranked by churn risk")
def at_risk(
    session: SessionDep,
    _: Agent,
    tier: Annotated[list[RiskTier], Query()] = [],
    segment: Annotated[list[str], Query(description="key:value, repeatable (AND)")] = [],
    status: Annotated[list[QueueStatus], Query(description="case status; 'none' = no case yet")] = [],
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    min_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    after: Annotated[str | None, Query(max_length=300, description="next_after of the previous page")] = None,
) -> AtRiskPage:
    return customers.at_risk(session, tiers=tier, segments=_segments(segment), statuses=status,
                             assignee=assignee, min_probability=min_probability, limit=limit, offset=offset,
                             after=after)


@router.get("/{customer_id}", response_model=CustomerProfile, summary="Unified profile across channels")
def profile(
    customer_id: str,
    session: SessionDep,
    _: Agent,
    timeline_limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=100, description="timeline_next of the previous page")] = None,
) -> CustomerProfile:
    return customers.profile(session, customer_id, timeline_limit=timeline_limit, before=before)
