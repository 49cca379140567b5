"""API keys and maintenance jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.common import InModel, LatestPage, Page

Role = Literal["viewer", "agent", "ingest", "admin"]
RunStatus = Literal["queued", "running", "succeeded", "rejected", "failed"]


class ApiKeyCreate(InModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    role: Role
    expires_days: int | None = Field(None, ge=1, le=3650, description="The key stops working after this many "
                                     "days (401 key_expired); unset: it never expires.")


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str
    """The secret, shown once: only its hash is stored."""


class ApiKeyList(BaseModel):
    items: list[ApiKeyPublic]
    next_after: int | None = Field(None, description="Pass as `after` for the next page; null on the last one.")


class FlagResult(BaseModel):
    scored: int
    cases_opened: int
    already_open: int
    recently_closed: int = Field(description="Above the threshold, but their case closed within CXM_CASE_COOLDOWN_DAYS.")
    over_capacity: int = Field(
        description="Above the threshold, but CXM_CASES_PER_DAY cases were already opened in the last 24 hours.")
    model_version: str
    threshold: float
    as_of: datetime = Field(description="The moment features were computed at: the request's as_of, else the "
                            "latest stored event (a historical import is scored as of its own end).")
    as_of_rule: Literal["request", "latest event", "now"]
    tiers: dict[str, str] = Field(description="What each risk tier means in churn probability.")
    drift: dict[str, float] = Field(
        description="Features of the scored customers far from the churn model's training data: population "
        "stability index >= 0.25, largest first. Probabilities there are extrapolated; retrain on your data.")


class RetryResult(BaseModel):
    attempted: int
    analysed: int
    still_pending: int
    failed: int


class ModelRunPublic(BaseModel):
    """A retraining run: ``queued`` until a ``cxm worker`` claims it, ``succeeded`` activated its model,
    ``rejected`` kept the current one."""

    id: int
    kind: Literal["churn", "sentiment", "reasons"] = Field(
        description="The model it trains: churn, or the text model's sentiment or reason head (from corrections).")
    status: RunStatus
    requested_by: str
    started_at: datetime = Field(description="When a worker started training it (until then: when it was queued).")
    finished_at: datetime | None
    model_version: str | None
    path: str | None = Field(description="Where the trained model and its card were saved.")
    metrics: dict[str, Any] | None = Field(description="The new model's validation metrics (roc_auc, pr_auc, brier...).")
    baseline: dict[str, Any] | None = Field(
        description="The model in service on the same validation cutoffs, or why it could not be compared; "
        "`drift`: features of today's customers far from its training data (PSI >= 0.25, largest first).")
    activated: bool
    error: str | None = Field(description="Why the run failed, or why its model was not activated.")
    force: bool
    claimed_by: str | None = Field(description="The worker (host:pid:nonce) that trains or trained it.")
    heartbeat_at: datetime | None = Field(
        description="Its worker's latest sign of life; a running run silent for CXM_WORKER_LEASE_S is failed.")


ModelRunPage = LatestPage[ModelRunPublic]
