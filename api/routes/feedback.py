"""POST /v1/feedback and POST /v1/analyze."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool

from api.deps import Analyst, AnalyzerDep, Ingest, RuntimeDep
from api.errors import ApiError
from api.runtime import AnalysisBusy
from api.schemas.analysis import AnalysisPublic, AnalyzeIn, AnalyzeOut, AnalyzeResult
from api.schemas.common import ERROR_RESPONSES, ErrorResponse
from api.schemas.feedback import FeedbackBatchResult, SocialFeedback, SurveyFeedback, TicketFeedback
from api.services.ingestion import IngestBacklog, check_backlog, ingest

log = logging.getLogger("cxm.api")
router = APIRouter(prefix="/v1", tags=["feedback"], responses=ERROR_RESPONSES)

ITEM_SCHEMA = {"oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"}
                         for m in (SurveyFeedback, SocialFeedback, TicketFeedback)]}


@router.post(
    "/feedback",
    response_model=FeedbackBatchResult,
    summary="Store one feedback item or a batch; idempotent on external_id",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        ITEM_SCHEMA, {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "minItems": 1, "items": ITEM_SCHEMA}}}]}}}}},
)
async def post_feedback(runtime: RuntimeDep, analyzer: AnalyzerDep, _: Ingest,
                        body: Any = Body(..., include_in_schema=False)) -> FeedbackBatchResult:
    """Each item is validated on its own: good ones are stored (raw, redacted) before analysis,
    bad ones come back ``rejected`` with the reason; a re-sent item is a ``duplicate``, other content
    under a stored ``external_id`` a ``conflict`` (not stored)."""
    if isinstance(body, dict) and "items" in body and "kind" not in body:
        items = body["items"]
        if not isinstance(items, list) or not items:
            raise ApiError(422, "validation_error", "items must be a non-empty list")
    elif isinstance(body, dict):
        items = [body]
    else:
        raise ApiError(422, "validation_error", "body must be one feedback object or {\"items\": [...]}")
    limit = runtime.settings.api_max_batch
    if len(items) > limit:
        raise ApiError(413, "batch_too_large", f"{len(items)} items; at most {limit} per request")
    settings = runtime.settings
    try:
        await run_in_threadpool(check_backlog, runtime.sessions, settings.ingest_max_pending)
    except IngestBacklog as exc:
        raise ApiError(503, "ingest_backlog", f"{exc}; retry later",
                       headers={"Retry-After": str(int(max(settings.worker_poll_interval_s, 5)))}) from exc
    return await run_in_threadpool(
        ingest, runtime.sessions, items, redactor=runtime.redactor,
        analyzer=analyzer if settings.analyze_on_ingest else None, versions=runtime.versions,
        max_attempts=settings.analysis_max_attempts, retry_after_s=settings.analysis_retry_interval_s)


@router.post("/analyze", response_model=AnalyzeOut, tags=["analysis"],
             responses={503: {"model": ErrorResponse, "description": "The analysis model failed or is busy"},
                        413: {"model": ErrorResponse, "description": "More text than CXM_API_ANALYZE_CHARS_PER_MINUTE"}},
             summary="Analyse texts without storing them")
async def analyze(payload: AnalyzeIn, runtime: RuntimeDep, analyzer: AnalyzerDep, caller: Analyst) -> AnalyzeOut:
    runtime.text_volume.check(caller.key_id, cost=float(sum(len(t) for t in payload.texts)))
    redactions = await run_in_threadpool(runtime.redactor.redact, payload.texts)
    texts = [r.text for r in redactions]
    try:
        if analyzer is runtime.models.analyzer:
            results = await runtime.batcher.analyze(texts, caller=caller.key_id)
        else:
            results = await run_in_threadpool(analyzer.analyze, texts)
    except AnalysisBusy as exc:
        raise ApiError(503, "analysis_busy", f"the analysis model is busy ({exc}); retry later",
                       headers={"Retry-After": "5"}) from exc
    except Exception as exc:
        log.exception("analysis failed")
        raise ApiError(503, "analysis_unavailable", "the analysis model failed; retry later",
                       headers={"Retry-After": "5"}) from exc
    return AnalyzeOut(
        results=[AnalyzeResult(redactions=r.counts, analysis=AnalysisPublic.model_validate(a.to_dict()))
                 for r, a in zip(redactions, results)],
        model_versions=runtime.versions,
    )
