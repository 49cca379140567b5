"""POST /v1/outcomes: who actually left, the labels churn retraining learns from."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import Ingest, RuntimeDep
from api.errors import ApiError
from api.schemas.common import ERROR_RESPONSES
from api.schemas.outcomes import OutcomeBatchIn, OutcomeBatchResult
from api.services.outcomes import record_outcomes

router = APIRouter(prefix="/v1", tags=["outcomes"], responses=ERROR_RESPONSES)


@router.post("/outcomes", response_model=OutcomeBatchResult,
             summary="Record customers who churned; idempotent per customer")
async def post_outcomes(payload: OutcomeBatchIn, runtime: RuntimeDep, _: Ingest) -> OutcomeBatchResult:
    """Each item is validated on its own: good ones are ``created``, ``updated`` (another date) or
    ``unchanged`` (re-sent); bad ones (unknown customer, a date in the future) come back ``rejected``
    with the reason."""
    limit = runtime.settings.api_max_batch
    if len(payload.items) > limit:
        raise ApiError(413, "batch_too_large", f"{len(payload.items)} items; at most {limit} per request")
    return await run_in_threadpool(record_outcomes, runtime.sessions, payload.items)
