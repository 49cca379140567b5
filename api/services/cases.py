"""Close the loop on a flagged customer: open -> acknowledged -> contacted -> resolved / dismissed."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import Session

from api.db import queries
from api.db.models import Case, CaseEvent
from api.errors import ApiError
from api.pii import PiiRedactor
from api.schemas.cases import CaseUpdate

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("acknowledged", "dismissed"),
    "acknowledged": ("contacted", "resolved", "dismissed"),
    "contacted": ("resolved", "dismissed"),
    "resolved": (),
    "dismissed": (),
}


def get_case(session: Session, case_id: int) -> Case:
    case = queries.get_case(session, case_id)
    if case is None:
        raise ApiError(404, "not_found", f"no case {case_id}")
    return case


def update_case(session: Session, case_id: int, change: CaseUpdate, actor: str, redactor: PiiRedactor) -> Case:
    """Apply one change; each part (status, assignee, note) leaves its own audit event. Notes are
    free text about a customer: personal data is redacted before they are stored.

    The change is written only if the case still has the status it was read with (compare-and-set,
    on SQLite too, which has no row locks): of two agents moving one case at once, one gets 409.
    """
    case = queries.get_case(session, case_id)
    if case is None:
        raise ApiError(404, "not_found", f"no case {case_id}")
    now = datetime.now(timezone.utc)
    fields = change.model_fields_set
    values: dict = {"updated_at": now}
    events = []
    if "status" in fields and change.status != case.status:
        if change.status not in TRANSITIONS[case.status]:
            raise ApiError(409, "invalid_transition",
                           f"a case cannot go from {case.status!r} to {change.status!r}",
                           {"from": case.status, "to": change.status, "allowed": list(TRANSITIONS[case.status])})
        events.append(CaseEvent(actor=actor, action="status_changed", from_status=case.status,
                                to_status=change.status, at=now))
        values["status"] = change.status
        if not TRANSITIONS[change.status]:
            values["closed_at"] = now
    elif "status" not in fields and not TRANSITIONS[case.status] and fields - {"note"}:
        raise ApiError(409, "case_closed", f"case {case_id} is {case.status}; only notes can be added")
    if "assignee" in fields and change.assignee != case.assignee:
        events.append(CaseEvent(actor=actor, action="assigned" if change.assignee else "unassigned",
                                assignee=change.assignee, at=now))
        values["assignee"] = change.assignee
    if change.note:
        note = redactor.redact([change.note])[0].text
        events.append(CaseEvent(actor=actor, action="note", note=note, at=now))
    read_status = case.status
    if not queries.update_case_if_status(session, case_id, read_status, values):
        session.rollback()
        raise ApiError(409, "case_changed", f"case {case_id} left {read_status!r} while this change was "
                       "applied; read it again and retry", {"expected": read_status})
    for event in events:
        queries.add_case_event(session, case, event)
    session.commit()
    return case
