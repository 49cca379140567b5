"""Agent (and admin) keys correct a feedback item's analysis and list the corrections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import Agent, RuntimeDep, SessionDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.corrections import CorrectionField, CorrectionIn, CorrectionPage, CorrectionResult, FeedbackCorrections
from api.services import corrections

router = APIRouter(prefix="/v1", tags=["corrections"], responses=ERROR_RESPONSES)

FeedbackId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/feedback/{feedback_id}/corrections", response_model=CorrectionResult,
             summary="Correct a feedback item's sentiment, reasons and/or churn intent")
def correct(feedback_id: FeedbackId, change: CorrectionIn, session: SessionDep, runtime: RuntimeDep,
            principal: Agent) -> CorrectionResult:
    """Each changed field is stored with who, when, the old and the new value; the model's analysis is kept.
    Sending the latest value again stores nothing (the field is listed in ``unchanged``); personal data in
    the note is redacted."""
    return corrections.correct(session, feedback_id, change, principal.name,
                               corrections.known_reasons(runtime.settings.reason_taxonomy), runtime.redactor)


@router.get("/feedback/{feedback_id}/corrections", response_model=FeedbackCorrections,
            summary="A feedback item's effective labels and its corrections")
def item_corrections(feedback_id: FeedbackId, session: SessionDep, _: Agent) -> FeedbackCorrections:
    return corrections.feedback_corrections(session, feedback_id)


@router.get("/corrections", response_model=CorrectionPage, summary="Corrections, newest first")
def list_corrections(
    session: SessionDep,
    _: Agent,
    feedback_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    field: CorrectionField | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[str | None, Query(max_length=20, description="`next` of the previous page")] = None,
) -> CorrectionPage:
    return corrections.page(session, limit=limit, before=before, feedback_id=feedback_id, field=field)
