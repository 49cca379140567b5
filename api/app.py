"""The FastAPI application: ``create_app`` wires settings, database, models and routes.

Models load once in ``lifespan`` (or are handed in, as the tests do to share them); the churn
model is ``CXM_CHURN_MODEL``, else the latest one retraining activated (checked again
periodically: a ``cxm worker`` trains and activates), else the shipped one; the text model likewise
(``CXM_SENTIMENT_MODEL``, else the latest one retrained from corrections, read at start). Inference runs
off the event loop; pending analyses are retried by ``cxm worker``, never in a serving process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.orm import sessionmaker

from api.auth import Principal, rate_limiter
from api.deps import caller, no_nul_in_url
from api.db.engine import make_engine, make_sessionmaker, migrate
from api.errors import ApiError, error_response, install_error_handlers
from api.pii import PiiRedactor
from api.routes import admin, alerts, cases, corrections, customers, feedback, health, metrics, outcomes
from api.schemas.feedback import FeedbackItem
from api.schemas.outcomes import OutcomeItem
from api.runtime import MicroBatcher, Models, Runtime
from api.services.analysis import model_versions
from api.services.correction_training import text_model_source
from api.services.retraining import churn_model_dir, serve_latest_model
from api.settings import Settings, get_settings
from api.web import install as install_web
from churn.model import ChurnModel

log = logging.getLogger("cxm.api")


def load_models(settings: Settings, churn_dir: Path | None = None) -> Models:
    """The analyzer from ``api.components`` and the churn model in ``churn_dir``
    (default ``settings.churn_model``; None there too: the one shipped with cxm)."""
    from api.components import build_analyzer

    churn_model = ChurnModel.load(churn_dir or settings.churn_model)
    return Models(analyzer=build_analyzer(serving(settings)), churn_model=churn_model)


def serving(settings: Settings) -> Settings:
    """An API process runs up to ``analyze_concurrency`` model calls side by side: unless
    ``torch_threads`` is set, each gets its share of the cores, so one key's long texts cannot
    oversubscribe the cores another key's call needs (measured in benchmarks/faults.py)."""
    if settings.torch_threads is not None:
        return settings
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return settings.model_copy(update={"torch_threads": max(1, cores // settings.analyze_concurrency)})


def _churn_dir(settings: Settings, sessions: sessionmaker) -> Path | None:
    with sessions() as session:
        return churn_model_dir(session, settings)


def _text_model(settings: Settings, sessions: sessionmaker) -> Settings:
    """``settings`` naming the text model to serve: pinned, else the latest one retraining from corrections activated."""
    with sessions() as session:
        return settings.model_copy(update={"sentiment_model": text_model_source(session, settings)})


async def _refresh_loop(runtime: Runtime) -> None:
    """Serve the churn model a ``cxm worker`` activated, without a restart."""
    while True:
        await asyncio.sleep(runtime.settings.model_refresh_interval_s)
        try:
            await asyncio.to_thread(serve_latest_model, runtime)
        except Exception:
            log.exception("checking for a newly activated churn model failed; trying again later")


class BodyLimit:
    """413 for request bodies over ``max_bytes`` (declared or streamed), before anything reads them."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body over {self.max_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await error_response(413, "payload_too_large", message)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTP error, so the body reader passes it on (any other exception became a 400).
                    raise ApiError(413, "payload_too_large", message)
            return received

        await self.app(scope, limited, send)


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Metric labels name these; any other method is counted as "other", so clients cannot add label values."""


def _instrument(app: FastAPI) -> None:
    registry = CollectorRegistry()
    app.state.prometheus = registry
    requests = Counter("cxm_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("cxm_http_request_seconds", "HTTP request latency", ["method", "route"], registry=registry)

    @app.middleware("http")
    async def measure(request, call_next):
        started = time.perf_counter()
        status = "500"  # an unhandled error passes through here before the outermost handler answers 500
        try:
            response = await call_next(request)
            status = str(response.status_code)
            return response
        finally:
            path = getattr(request.scope.get("route"), "path", "unmatched")
            method = request.method if request.method in HTTP_METHODS else "other"
            latency.labels(method, path).observe(time.perf_counter() - started)
            requests.labels(method, path, status).inc()


def _openapi(app: FastAPI):
    """The generated spec plus the item schemas the batch endpoints validate one by one."""

    def build() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            items = TypeAdapter(FeedbackItem).json_schema(ref_template="#/components/schemas/{model}")
            components.update(items.get("$defs", {}))
            components["OutcomeItem"] = OutcomeItem.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def _keyed_spec(app: FastAPI) -> None:
    """/openapi.json for callers with a key of any role; the docs pages are not served."""

    @app.get("/openapi.json", include_in_schema=False)
    def spec(_: Annotated[Principal, Depends(caller)]) -> JSONResponse:
        return JSONResponse(app.openapi())


def create_app(settings: Settings | None = None, *, models: Models | None = None) -> FastAPI:
    """The app; ``models`` (already loaded) skips loading them in ``lifespan``."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.database_url, settings)
        await asyncio.to_thread(migrate, engine)
        sessions = make_sessionmaker(engine)
        churn_dir = await asyncio.to_thread(_churn_dir, settings, sessions)
        served = settings
        if models is None:
            served = await asyncio.to_thread(_text_model, settings, sessions)
            loaded = await asyncio.to_thread(load_models, served, churn_dir)
        elif churn_dir is not None:  # handed-in models are the defaults; a pinned or activated model wins
            loaded = replace(models, churn_model=await asyncio.to_thread(ChurnModel.load, churn_dir))
        else:
            loaded = models
        shared = engine if settings.api_rate_limits_shared else None
        runtime = Runtime(
            settings=settings, engine=engine, sessions=sessions, models=loaded,
            redactor=PiiRedactor(settings.pii_redact),
            limiter=rate_limiter(shared, "requests", settings.api_rate_limit_per_minute, settings.api_rate_limit_burst),
            failed_auth=rate_limiter(shared, "failed_auth", settings.api_failed_auth_per_minute,
                                     settings.api_failed_auth_per_minute, "this client address after failed API keys"),
            text_volume=rate_limiter(shared, "analyze_chars", settings.api_analyze_chars_per_minute,
                                     settings.api_analyze_chars_per_minute,
                                     "characters of text this API key sends to /v1/analyze"),
            batcher=MicroBatcher(loaded.analyzer, settings.analyze_batch_wait_ms / 1000, settings.analyze_max_batch,
                                 settings.analyze_max_queue, settings.analyze_timeout_s,
                                 max_batch_chars=settings.analyze_max_batch_chars,
                                 concurrency=settings.analyze_concurrency),
            versions=model_versions(served, loaded.analyzer), churn_dir=churn_dir,
        )
        runtime.batcher.start()
        app.state.runtime = runtime
        refreshing = asyncio.create_task(_refresh_loop(runtime)) if settings.model_refresh_interval_s > 0 else None
        try:
            yield
        finally:
            if refreshing is not None:
                refreshing.cancel()
                await asyncio.gather(refreshing, return_exceptions=True)
            await runtime.batcher.stop()
            engine.dispose()

    docs = settings.api_docs_open
    app = FastAPI(
        title="cxm",
        version="1",
        summary="Feedback mining, churn risk and the triage queue for CX teams (en/sv/pl), offline.",
        lifespan=lifespan,
        dependencies=[Depends(no_nul_in_url)],
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app, settings.database_retry_after_s)
    # Inside the instrumenting middleware: that one reads the body in a task group, which would wrap
    # BodyLimit's 413 for a streamed body in an ExceptionGroup (FastAPI then answered 400).
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    _instrument(app)
    for module in (health, feedback, outcomes, customers, cases, corrections, metrics, admin, alerts):
        app.include_router(module.router)
    install_web(app, settings)
    app.openapi = _openapi(app)
    if not docs:
        _keyed_spec(app)
    return app
