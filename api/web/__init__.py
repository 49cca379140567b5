"""The web app under ``/app``: a triage desk for agents and a dashboard for viewers, served offline
(templates, stylesheet and charts come from this package; nothing is fetched from elsewhere)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.settings import Settings
from api.web import admin, dashboard
from api.web.pages import PageError, SignInRequired, render, router, signed_in
from api.web.session import SessionSigner


def install(app: FastAPI, settings: Settings) -> None:
    """Add the pages, their stylesheet and their error handling to ``app``."""
    app.state.web_signer = SessionSigner(settings)
    for pages in (router, dashboard.router, admin.router):
        app.include_router(pages)
    app.mount("/app/static", StaticFiles(directory=Path(__file__).parent / "static"), name="web-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(_request: Request, exc: SignInRequired):
        query = f"?next={quote(exc.next_url, safe='')}"
        if exc.notice:
            query += f"&notice={exc.notice}"
        return RedirectResponse(f"/app/login{query}", 303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError):
        try:
            user = signed_in(request, request.app.state.runtime)
        except (SignInRequired, PageError):
            user = None
        return render(request, "error.html", user, exc.status, message=exc.message)
