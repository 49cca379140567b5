"""Cases: close the loop on a flagged customer, with an audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Path

from api.db.models import Case
from api.deps import Agent, RuntimeDep, SessionDep
from api.schemas.cases import CaseEventPublic, CasePublic, CaseUpdate
from api.schemas.common import ERROR_RESPONSES
from api.services import cases

router = APIRouter(prefix="/v1/cases", tags=["cases"], responses={**ERROR_RESPONSES, 404: ERROR_RESPONSES[422] | {"description": "No such case"}, 409: ERROR_RESPONSES[422] | {"description": "Transition not allowed, or the case changed meanwhile"}})

CaseId = Path(ge=1, le=2**31 - 1)


def _public(case: Case) -> CasePublic:
    return CasePublic(
        id=case.id, customer_id=case.customer_id, status=case.status, assignee=case.assignee,
        opened_at=case.opened_at, updated_at=case.updated_at, closed_at=case.closed_at,
        risk_probability=case.risk_probability, risk_tier=case.risk_tier,
        allowed_transitions=list(cases.TRANSITIONS[case.status]),
        events=[CaseEventPublic(at=e.at, actor=e.actor, action=e.action, from_status=e.from_status,
                                to_status=e.to_status, assignee=e.assignee, note=e.note) for e in case.events],
    )


@router.get("/{case_id}", response_model=CasePublic, summary="A case and its audit trail")
def get_case(session: SessionDep, _: Agent, case_id: int = CaseId) -> CasePublic:
    return _public(cases.get_case(session, case_id))


@router.patch("/{case_id}", response_model=CasePublic,
              summary="Move a case along open → acknowledged → contacted → resolved/dismissed, assign, note")
def update_case(change: CaseUpdate, session: SessionDep, runtime: RuntimeDep, principal: Agent,
                case_id: int = CaseId) -> CasePublic:
    return _public(cases.update_case(session, case_id, change, principal.name, runtime.redactor))
