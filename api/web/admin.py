"""The admin page: API keys (a new secret is shown once), re-scoring now, retraining runs with
their validation figures. The same service functions as ``/v1/admin`` do the work."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.auth import create_api_key, expiry_in_days, revoke_api_key
from api.db import queries
from api.db.models import ROLES
from api.deps import RuntimeDep, SessionDep
from api.schemas.admin import ApiKeyCreate
from api.services.retraining import RetrainInProgress, queue_run, serve_latest_model
from api.services.risk import flag
from api.web.pages import AdminUser, Form, PageError, WebUser, render

router = APIRouter(prefix="/app", include_in_schema=False)

RUNS_SHOWN = 20
RUN_FIGURES = ("roc_auc", "pr_auc", "brier", "ece", "lift_top_10pct")
NOTICES = {"revoked": "Key revoked: it stops working at its next request.",
           "retrain-queued": "Retraining queued: a cxm worker trains it; this page shows its outcome when done."}


def _page(request: Request, session: Session, user: WebUser, status: int = 200, **context) -> Response:
    runs, total = queries.list_model_runs(session, RUNS_SHOWN, 0)
    return render(request, "admin.html", user, status, keys=queries.list_api_keys(session), runs=runs,
                  runs_total=total, roles=ROLES, figures=RUN_FIGURES, **context)


@router.get("/admin")
def admin_page(request: Request, session: SessionDep, user: AdminUser, notice: str = "") -> Response:
    return _page(request, session, user, notice=NOTICES.get(notice))


@router.post("/admin/keys")
def create_key(request: Request, session: SessionDep, user: AdminUser, form: Form) -> Response:
    """Create a key and show its secret in this response only; a refused form keeps what was typed."""
    wanted = {"name": form.get("name", ""), "role": form.get("role", "")}
    if form.get("expires_days", "").strip():
        wanted["expires_days"] = form["expires_days"].strip()
    try:
        payload = ApiKeyCreate.model_validate(wanted)
    except ValidationError as error:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _page(request, session, user, 422, key_error=f"Key not created: {message}.", kept=form)
    key, secret = create_api_key(session, payload.name, payload.role, expiry_in_days(payload.expires_days))
    session.commit()
    return _page(request, session, user, created=key, secret=secret)


@router.post("/admin/keys/{key_id}/revoke")
def revoke_key(session: SessionDep, _: AdminUser, __: Form, key_id: int) -> Response:
    if revoke_api_key(session, key_id) is None:
        raise PageError(404, f"No API key {key_id}.")
    session.commit()
    return RedirectResponse("/app/admin?notice=revoked", 303)


@router.post("/admin/flag")
def rescore(request: Request, session: SessionDep, runtime: RuntimeDep, user: AdminUser, form: Form) -> Response:
    """Re-score customers with new feedback (every customer when ``all`` is ticked) and open cases."""
    serve_latest_model(runtime)  # a worker may have activated a model since the last periodic check
    settings = runtime.settings
    outcome = flag(session, runtime.models.churn_model, settings.risk_threshold, actor=user.principal.name,
                   rescore_all=form.get("all") == "on", cooldown_days=settings.case_cooldown_days,
                   cases_per_day=settings.cases_per_day)
    return _page(request, session, user, flagged=outcome)


@router.post("/admin/retrain")
def retrain(request: Request, session: SessionDep, runtime: RuntimeDep, user: AdminUser, form: Form) -> Response:
    try:
        queue_run(session, runtime.settings, user.principal.name, force=form.get("force") == "on")
    except RetrainInProgress as exc:
        session.rollback()
        return _page(request, session, user, 409, run_error=f"{exc} Wait for it to finish (this page shows it).")
    return RedirectResponse("/app/admin?notice=retrain-queued#runs", 303)
