"""Named dependencies the routes declare: session, caller (authenticated, rate-limited, role-checked), models."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from api.auth import Principal, authenticate, authorize
from api.errors import ApiError
from api.runtime import Runtime
from api.schemas.common import has_nul
from nlp.analyzer import Analyzer

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="A key made by `cxm keys create`.")


def no_nul_in_url(request: Request) -> None:
    """Path and query values with NUL characters are refused: PostgreSQL text cannot hold them."""
    if has_nul(request.scope["path"]) or has_nul(list(request.query_params.multi_items())):
        raise ApiError(422, "validation_error", "path and query parameters must not contain NUL characters")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_analyzer(runtime: RuntimeDep) -> Analyzer:
    """The loaded analyzer (tests override this dependency to inject a failing one)."""
    return runtime.models.analyzer


AnalyzerDep = Annotated[Analyzer, Depends(get_analyzer)]


def authenticate_client(request: Request, runtime: Runtime, key: str | None) -> Principal:
    """The key's principal, for the API and the web sign-in alike.

    Wrong keys are counted per client address: once its budget is spent, that address gets 429
    before any key is looked at, so keys cannot be tried at the full request rate.
    """
    client = request.client.host if request.client else "unknown"
    runtime.failed_auth.check(client, spend=False)
    # A session of its own, closed at once: a request waiting on the models must not hold a
    # pooled connection (under load that exhausts the pool).
    with runtime.sessions() as session:
        try:
            return authenticate(session, key)
        except ApiError:
            if key:
                runtime.failed_auth.spend(client)
            raise


def caller(request: Request, runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key)]) -> Principal:
    principal = authenticate_client(request, runtime, key)
    runtime.limiter.check(principal.key_id)
    return principal


def require(*roles: str):
    """Dependency: the caller's key must have one of ``roles`` (admin may do everything)."""
    allowed = tuple(dict.fromkeys((*roles, "admin")))

    def check(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        authorize(principal, allowed)
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer", "agent"))]
Agent = Annotated[Principal, Depends(require("agent"))]
Ingest = Annotated[Principal, Depends(require("ingest"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Analyst = Annotated[Principal, Depends(require("agent", "ingest", "viewer"))]


@dataclass(frozen=True)
class LatestCursor:
    """Where a latest-first list's page starts: ``offset`` rows down, or below the id ``before`` (the
    keyset cursor, as cheap however deep; not both)."""

    limit: int
    offset: int
    before: int | None


def latest_cursor(limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                  before: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                                      description="next_before of the previous page")] = None,
                  ) -> LatestCursor:
    if before is not None and offset:
        raise ApiError(422, "validation_error", "before= pages by cursor; send no offset with it")
    return LatestCursor(limit, offset, before)


Latest = Annotated[LatestCursor, Depends(latest_cursor)]
