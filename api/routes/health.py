"""Liveness, readiness and Prometheus metrics (open: no customer data)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.db import queries
from api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Models loaded and database reachable",
            responses={503: {"description": "Not ready"}})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks = {"models": runtime.models.analyzer is not None and runtime.models.churn_model is not None}
    try:
        with runtime.sessions() as session:
            queries.ping(session)
        checks["database"] = True
    except Exception:
        checks["database"] = False
    ready = all(checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def prometheus(request: Request) -> Response:
    return Response(generate_latest(request.app.state.prometheus), media_type=CONTENT_TYPE_LATEST)
