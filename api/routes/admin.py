"""Admin: API keys, re-scoring (`flag`), retraining the churn model and re-trying pending analyses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool

from api.auth import create_api_key, expiry_in_days, revoke_api_key
from api.db import queries
from api.deps import Admin, AnalyzerDep, Latest, RuntimeDep, SessionDep
from api.errors import ApiError
from api.schemas.admin import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyPublic,
    FlagResult,
    ModelRunPage,
    ModelRunPublic,
    RetryResult,
)
from api.schemas.common import ERROR_RESPONSES, ErrorResponse
from api.services.analysis import retry_pending
from api.services.retraining import RetrainInProgress, queue_run, serve_latest_model
from api.services.risk import flag

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)


def _public(key) -> ApiKeyPublic:
    return ApiKeyPublic(id=key.id, name=key.name, role=key.role, prefix=key.prefix,
                        created_at=key.created_at, revoked_at=key.revoked_at, expires_at=key.expires_at)


@router.post("/keys", response_model=ApiKeyCreated, status_code=201, summary="Create an API key (shown once)")
def create_key(payload: ApiKeyCreate, session: SessionDep, _: Admin) -> ApiKeyCreated:
    key, secret = create_api_key(session, payload.name, payload.role, expiry_in_days(payload.expires_days))
    session.commit()
    return ApiKeyCreated(**_public(key).model_dump(), key=secret)


@router.get("/keys", response_model=ApiKeyList, summary="List API keys (no secrets), in pages")
def list_keys(session: SessionDep, _: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 100,
              after: Annotated[int, Query(ge=0, le=2**31 - 1, description="next_after of the previous page")] = 0,
              ) -> ApiKeyList:
    keys = queries.list_api_keys(session, after, limit + 1)
    page = keys[:limit]
    return ApiKeyList(items=[_public(k) for k in page], next_after=page[-1].id if len(keys) > limit else None)


@router.delete("/keys/{key_id}", response_model=ApiKeyPublic, summary="Revoke an API key")
def revoke_key(session: SessionDep, _: Admin, key_id: int = Path(ge=1, le=2**31 - 1)) -> ApiKeyPublic:
    key = revoke_api_key(session, key_id)
    if key is None:
        raise ApiError(404, "not_found", f"no API key {key_id}")
    session.commit()
    return _public(key)


@router.post("/flag", response_model=FlagResult, summary="Re-score customers with new feedback; open cases")
async def flag_customers(runtime: RuntimeDep, principal: Admin, rescore_all: bool = False,
                         as_of: datetime | None = None) -> FlagResult:
    """Features as of ``as_of`` (default: the latest stored event); at most CXM_CASES_PER_DAY new cases a day."""
    def run():
        serve_latest_model(runtime)  # a worker may have activated a model since the last periodic check
        with runtime.sessions() as session:
            return flag(session, runtime.models.churn_model, runtime.settings.risk_threshold,
                        actor=principal.name, rescore_all=rescore_all, as_of=as_of,
                        cooldown_days=runtime.settings.case_cooldown_days,
                        cases_per_day=runtime.settings.cases_per_day)

    outcome = await run_in_threadpool(run)
    return FlagResult(**vars(outcome))


@router.post("/retrain", response_model=ModelRunPublic, status_code=202,
             responses={409: {"model": ErrorResponse, "description": "A retraining run is queued or running"}},
             summary="Queue a retraining of the churn model on the stored feedback and outcomes")
def retrain(session: SessionDep, runtime: RuntimeDep, principal: Admin, force: bool = False) -> ModelRunPublic:
    """A ``cxm worker`` trains the queued run; poll ``GET /v1/admin/runs/{id}``. Its model replaces the
    one in service (in every API process, within CXM_MODEL_REFRESH_INTERVAL_S) when its validation
    PR-AUC is not worse by more than CXM_RETRAIN_MIN_PR_AUC_GAIN, or when ``force``."""
    try:
        run = queue_run(session, runtime.settings, principal.name, force=force)
    except RetrainInProgress as exc:
        raise ApiError(409, "retrain_in_progress", str(exc), {"run_id": exc.run_id}) from exc
    return ModelRunPublic.model_validate(run, from_attributes=True)


@router.get("/runs", response_model=ModelRunPage, summary="Retraining runs, latest first")
def list_runs(session: SessionDep, _: Admin, cursor: Latest) -> ModelRunPage:
    runs, total = queries.list_model_runs(session, cursor.limit + 1, cursor.offset, cursor.before)
    return ModelRunPage.of(runs, lambda r: ModelRunPublic.model_validate(r, from_attributes=True),
                           total=total, limit=cursor.limit, offset=cursor.offset)


@router.get("/runs/{run_id}", response_model=ModelRunPublic, summary="One retraining run")
def get_run(session: SessionDep, _: Admin, run_id: int = Path(ge=1, le=2**31 - 1)) -> ModelRunPublic:
    run = queries.get_model_run(session, run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no retraining run {run_id}")
    return ModelRunPublic.model_validate(run, from_attributes=True)


@router.post("/retry-analysis", response_model=RetryResult, summary="Analyse pending feedback now")
async def retry(runtime: RuntimeDep, analyzer: AnalyzerDep, _: Admin, include_failed: bool = False) -> RetryResult:
    attempted, outcome = await run_in_threadpool(
        retry_pending, runtime.sessions, analyzer, runtime.versions, runtime.settings.analysis_max_attempts,
        include_failed=include_failed)
    return RetryResult(attempted=attempted, analysed=outcome.analysed, still_pending=outcome.pending,
                       failed=outcome.failed)
