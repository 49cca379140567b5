"""The web app's signed session cookie and the CSRF token bound to it.

The cookie holds a random nonce and, once signed in, the API key's id — never the key. Every
visitor (signed in or not) has a nonce; each form carries an HMAC of it, so a cross-site form
cannot forge the token, and signing in issues a new nonce (no session fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from api.settings import Settings

log = logging.getLogger("cxm.web")

COOKIE = "cxm_session"


@dataclass(frozen=True)
class SessionData:
    nonce: str
    key_id: int | None = None


class SessionSigner:
    """Reads and writes ``SessionData`` in a signed, HttpOnly, SameSite=Lax cookie that expires."""

    def __init__(self, settings: Settings):
        if settings.web_secret is None:
            log.warning("CXM_WEB_SECRET is unset: web sign-ins are signed with a random per-process secret "
                        "and end when this process restarts")
            secret = secrets.token_urlsafe(32)
        else:
            secret = settings.web_secret.get_secret_value()
        self._secret = secret.encode("utf-8")
        self._serializer = URLSafeTimedSerializer(secret, salt="cxm-web-session")
        self.max_age = int(settings.web_session_hours * 3600)
        self.secure = settings.web_cookie_secure

    def read(self, request: Request) -> SessionData | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age)
            return SessionData(nonce=str(data["n"]), key_id=data.get("k"))
        except (BadSignature, KeyError, TypeError):
            return None

    def write(self, response: Response, data: SessionData) -> None:
        value = self._serializer.dumps({"n": data.nonce, "k": data.key_id})
        response.set_cookie(COOKIE, value, max_age=self.max_age, httponly=True, samesite="lax",
                            secure=self.secure, path="/app")

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/app", httponly=True, samesite="lax", secure=self.secure)

    def csrf_token(self, data: SessionData) -> str:
        return hmac.new(self._secret, f"csrf:{data.nonce}".encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, data: SessionData | None, token: str | None) -> bool:
        return data is not None and bool(token) and hmac.compare_digest(self.csrf_token(data), token)


def new_session(key_id: int | None = None) -> SessionData:
    return SessionData(nonce=secrets.token_urlsafe(16), key_id=key_id)
