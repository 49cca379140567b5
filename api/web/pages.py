"""The web app's pages: thin routes over the same services as the API, rendered with Jinja2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.auth import Principal, principal_for_key
from api.deps import RuntimeDep, SessionDep, authenticate_client
from api.errors import ApiError
from api.db import queries
from api.runtime import Runtime
from api.schemas.cases import CaseUpdate
from api.schemas.corrections import CorrectionIn, EffectiveLabels
from api.services import cases, corrections, customers
from api.web import charts
from api.web.session import SessionData, SessionSigner, new_session

router = APIRouter(prefix="/app", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

PAGE_SIZE = 25
TIMELINE_PAGE = 20
TIERS = ("high", "medium", "low")
QUEUE_STATUSES = ("open", "acknowledged", "contacted", "resolved", "dismissed", "none")
SCORE_SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
QUEUE_SORTS = {"probability": "highest churn risk first", "age": "oldest case first",
               "feedback": "latest feedback first"}


NOTICES = {"signed-out": "Signed out.",
           "key-invalid": "Your key was revoked or has expired: sign in with a valid key."}
"""What the sign-in page may say, by code: a link cannot make it show any other text."""


class SignInRequired(Exception):
    """No valid session, or its key was revoked or expired (``notice``): back to the sign-in page."""

    def __init__(self, next_url: str, notice: str | None = None):
        self.next_url, self.notice = next_url, notice


class PageError(Exception):
    """An HTML error page (the JSON API's ApiError stays JSON)."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    csrf: str


def _signer(request: Request) -> SessionSigner:
    return request.app.state.web_signer


def signed_in(request: Request, runtime: RuntimeDep) -> WebUser:
    data = _signer(request).read(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if data is None or data.key_id is None:
        raise SignInRequired(here)
    with runtime.sessions() as session:
        try:
            principal = principal_for_key(session, data.key_id)
        except ApiError:
            raise SignInRequired(here, "key-invalid") from None
    try:
        runtime.limiter.check(principal.key_id)  # the key's request budget, as over the API
    except ApiError as error:
        raise PageError(error.status_code, f"{error.detail}; wait a moment and reload.") from None
    return WebUser(principal, _signer(request).csrf_token(data))


def role(*roles: str):
    """Dependency: a signed-in user whose key has one of ``roles`` (admin may do everything), as in the API."""
    allowed = tuple(dict.fromkeys((*roles, "admin")))

    def check(user: Annotated[WebUser, Depends(signed_in)]) -> WebUser:
        if user.principal.role not in allowed:
            raise PageError(403, f"A {user.principal.role} key cannot open this page; it needs one of: "
                            f"{', '.join(allowed)}.")
        return user

    return check


AgentUser = Annotated[WebUser, Depends(role("agent"))]
ViewerUser = Annotated[WebUser, Depends(role("viewer", "agent"))]
AdminUser = Annotated[WebUser, Depends(role("admin"))]


async def checked_form(request: Request) -> dict[str, str]:
    """The url-encoded form of a POST, refused (403) unless it carries this session's CSRF token."""
    body = (await request.body()).decode("utf-8", "replace")
    form = {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}
    signer = _signer(request)
    if not signer.csrf_valid(signer.read(request), form.get("csrf")):
        raise PageError(403, "This form expired or did not come from this site (missing or wrong CSRF token). "
                        "Reload the page and submit it again.")
    return form


Form = Annotated[dict[str, str], Depends(checked_form)]


def _home(principal: Principal) -> str:
    return "/app/dashboard" if principal.role == "viewer" else "/app/queue"


def _local(url: str | None, fallback: str) -> str:
    """Only paths inside the app are followed after a form, never another site."""
    return url if url and url.startswith("/app/") and not url.startswith("//") else fallback


def render(request: Request, name: str, user: WebUser | None, status: int = 200, **context) -> Response:
    return templates.TemplateResponse(request, name, {"user": user, **context}, status_code=status)


def _login_page(request: Request, status: int = 200, **context) -> Response:
    """The sign-in form, with an anonymous session (new if needed) whose token the form carries."""
    signer = _signer(request)
    data = signer.read(request) or new_session()
    response = render(request, "login.html", None, status, csrf=signer.csrf_token(data), **context)
    signer.write(response, SessionData(nonce=data.nonce))
    return response


@router.get("")
@router.get("/")
def home(request: Request, runtime: RuntimeDep) -> Response:
    try:
        return RedirectResponse(_home(signed_in(request, runtime).principal), 303)
    except SignInRequired:
        return RedirectResponse("/app/login", 303)


@router.get("/login")
def login_form(request: Request, next: str | None = None, notice: str | None = None) -> Response:
    return _login_page(request, next=_local(next, ""), message=NOTICES.get(notice or ""))


@router.post("/login")
def login(request: Request, runtime: RuntimeDep, form: Form) -> Response:
    """Exchange a pasted API key for a session cookie that holds the key's id, never the key."""
    key, wanted = form.get("key", "").strip(), _local(form.get("next"), "")
    try:
        principal = authenticate_client(request, runtime, key)
    except ApiError as error:
        message = "Paste an API key." if not key else f"Not signed in: {error.detail}."
        return _login_page(request, 429 if error.status_code == 429 else 401, next=wanted, error=message)
    response = RedirectResponse(wanted or _home(principal), 303)
    _signer(request).write(response, new_session(principal.key_id))
    return response


@router.post("/logout")
def logout(request: Request, _: Form) -> Response:
    response = RedirectResponse("/app/login?notice=signed-out", 303)
    _signer(request).clear(response)
    return response


@router.get("/queue")
def queue(request: Request, session: SessionDep, user: AgentUser, tier: str = "", status: str = "",
          assignee: str = "", segment: str = "", sort: str = "probability", page: int = 1) -> Response:
    page = max(1, page)
    key, sep, value = segment.strip().partition(":")
    error = None
    if segment.strip() and not (sep and key.strip()):
        error = f"Segment {segment.strip()!r} must be key:value, e.g. plan:pro."
    found = customers.at_risk(session, tiers=[tier] if tier in TIERS else [],
                              segments={key.strip(): value.strip()} if sep and key.strip() else {},
                              statuses=[status] if status in QUEUE_STATUSES else [],
                              assignee=assignee.strip() or None, min_probability=None,
                              limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, excerpts=1,
                              sort=sort if sort in QUEUE_SORTS else "probability")
    filters = {"tier": tier, "status": status, "assignee": assignee, "segment": segment,
               "sort": sort if sort in QUEUE_SORTS else ""}
    return render(request, "queue.html", user, 422 if error else 200, page_items=found, page=page,
                  pages=max(1, -(-found.total // PAGE_SIZE)), filters=filters, tiers=TIERS,
                  statuses=QUEUE_STATUSES, sorts=QUEUE_SORTS, error=error,
                  query=lambda **change: _query({**filters, "page": page, **change}))


def _query(params: dict) -> str:
    return "?" + "&".join(f"{k}={quote(str(v))}" for k, v in params.items() if v not in ("", None))


@router.post("/cases/{case_id}/assign")
def assign_to_me(session: SessionDep, runtime: RuntimeDep, user: AgentUser, form: Form, case_id: int) -> Response:
    try:
        cases.update_case(session, case_id, CaseUpdate(assignee=user.principal.name), user.principal.name,
                          runtime.redactor)
    except ApiError as error:
        raise PageError(error.status_code, f"Could not assign case {case_id}: {error.detail}.") from None
    return RedirectResponse(_local(form.get("back"), "/app/queue"), 303)


def _customer_page(request: Request, session: Session, runtime: Runtime, user: WebUser, customer_id: str,
                   before: str | None = None, status: int = 200, **context) -> Response:
    try:
        profile = customers.profile(session, customer_id, timeline_limit=TIMELINE_PAGE, before=before)
    except ApiError as error:
        raise PageError(error.status_code, f"{error.detail}.") from None
    case = cases.get_case(session, profile.cases[0].id) if profile.cases else None
    return render(request, "customer.html", user, status, profile=profile, case=case,
                  moves=cases.TRANSITIONS[case.status] if case else (),
                  charts={name: charts.score_history(profile.scores, name, *scale)
                          for name, scale in SCORE_SCALES.items()}, before=before,
                  reason_choices=corrections.reason_choices(runtime.settings.reason_taxonomy), **context)


@router.get("/customers/{customer_id}")
def customer(request: Request, session: SessionDep, runtime: RuntimeDep, user: AgentUser, customer_id: str,
             before: str | None = None) -> Response:
    return _customer_page(request, session, runtime, user, customer_id, before)


@router.post("/cases/{case_id}/move")
def move_case(request: Request, session: SessionDep, runtime: RuntimeDep, user: AgentUser, form: Form,
              case_id: int) -> Response:
    """Move the case (or only add a note); a refused change re-renders the page with the note kept."""
    change = {k: v for k in ("status", "note") if (v := form.get(k, "").strip())}
    try:
        customer_id = cases.get_case(session, case_id).customer_id
    except ApiError as error:
        raise PageError(error.status_code, f"{error.detail}.") from None
    try:
        cases.update_case(session, case_id, CaseUpdate(**change), user.principal.name, runtime.redactor)
    except (ApiError, ValidationError) as error:
        session.rollback()
        status, message = ((error.status_code, str(error.detail)) if isinstance(error, ApiError)
                           else (422, "; ".join(e["msg"] for e in error.errors())))
        return _customer_page(request, session, runtime, user, customer_id, status=status, error=message,
                              kept=form)
    return RedirectResponse(f"/app/customers/{quote(customer_id, safe='')}#case", 303)


def _changed_labels(form: dict[str, str], shown: EffectiveLabels, reason_ids: frozenset[str]) -> dict:
    """The fields the agent changed on the correction form: an untouched field is not a confirmation."""
    change: dict = {}
    if (sentiment := form.get("sentiment", "")) and sentiment != shown.sentiment:
        change["sentiment"] = sentiment
    reasons = sorted(r for r in reason_ids if form.get(f"reason-{r}"))
    if set(reasons) != set(shown.reasons or ()):
        change["reasons"] = reasons
    intent = {"yes": True, "no": False}.get(form.get("churn_intent", ""))
    if intent is not None and intent != shown.churn_intent:
        change["churn_intent"] = intent
    return change


@router.post("/feedback/{feedback_id}/corrections")
def correct_feedback(request: Request, session: SessionDep, runtime: RuntimeDep, user: AgentUser, form: Form,
                     feedback_id: int) -> Response:
    """Correct a feedback item's sentiment, reasons or churn intent (as POST /v1/feedback/{id}/corrections);
    a refused correction re-renders the page with the form open and the note kept."""
    row = queries.get_feedback(session, feedback_id)
    if row is None:
        raise PageError(404, f"No feedback {feedback_id}.")
    reason_ids = corrections.known_reasons(runtime.settings.reason_taxonomy)
    change = _changed_labels(form, corrections.effective_labels(session, [row])[row.id], reason_ids)
    try:
        corrections.correct(session, feedback_id, CorrectionIn(**change, note=form.get("note", "").strip() or None),
                            user.principal.name, reason_ids, runtime.redactor)
    except (ApiError, ValidationError) as error:
        session.rollback()
        message = (str(error.detail) if isinstance(error, ApiError)
                   else "Change the sentiment, the reasons or the churn intent to correct this item.")
        return _customer_page(request, session, runtime, user, row.customer_id, status=422,
                              correction_error=message, correcting=feedback_id, kept=form)
    return RedirectResponse(f"/app/customers/{quote(row.customer_id, safe='')}#feedback-{feedback_id}", 303)
