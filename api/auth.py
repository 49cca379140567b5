"""API keys with roles: only a SHA-256 of each 256-bit random key is stored.

A fast hash is enough here: the keys are random, not passwords, so they cannot be guessed.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.db import queries
from api.db.models import ROLES, ApiKey
from api.errors import ApiError

KEY_PREFIX = "cxm_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the audit trail records ``name``."""

    key_id: int
    name: str
    role: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(session: Session, name: str, role: str,
                   expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret (shown once, never stored); after
    ``expires_at`` (None: never) the key is refused."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {ROLES}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = queries.add_api_key(session, ApiKey(name=name, role=role, key_hash=hash_key(secret),
                                              prefix=secret[:10], expires_at=expires_at))
    return key, secret


def expiry_in_days(days: int | None) -> datetime | None:
    """When a key made now for ``days`` days expires (None: never)."""
    return None if days is None else datetime.now(timezone.utc) + timedelta(days=days)


def revoke_api_key(session: Session, key_id: int) -> ApiKey | None:
    key = queries.get_api_key(session, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = datetime.now(timezone.utc)
    return key


def authenticate(session: Session, secret: str | None) -> Principal:
    if not secret:
        raise ApiError(401, "unauthenticated", "missing API key (X-API-Key header)",
                       headers={"WWW-Authenticate": "ApiKey"})
    return _valid(queries.api_key_by_hash(session, hash_key(secret)))


def principal_for_key(session: Session, key_id: int) -> Principal:
    """The key's principal while it is still valid: a web session re-checks its key on every request."""
    return _valid(queries.get_api_key(session, key_id))


def _valid(key: ApiKey | None) -> Principal:
    if key is None or key.revoked_at is not None:
        raise ApiError(401, "unauthenticated", "unknown or revoked API key",
                       headers={"WWW-Authenticate": "ApiKey"})
    if key.expires_at is not None and key.expires_at <= datetime.now(timezone.utc):
        raise ApiError(401, "key_expired", f"this API key expired at {key.expires_at.isoformat()}; "
                       "an admin can create a new one", headers={"WWW-Authenticate": "ApiKey"})
    return Principal(key.id, key.name, key.role)


def authorize(principal: Principal, roles: tuple[str, ...]) -> None:
    if principal.role not in roles:
        raise ApiError(
            403, "forbidden", f"role {principal.role!r} may not do this; needs one of {list(roles)}"
        )


class RateLimiter:
    """Token bucket per key (an API key's id, a client address): ``rate_per_minute`` sustained,
    ``burst`` at once. Buckets that refilled are forgotten, so many keys cannot grow it for long."""

    def __init__(self, rate_per_minute: int, burst: int, what: str = "this API key"):
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.what = what
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._pruned_at = time.monotonic()

    def check(self, key: Hashable, *, spend: bool = True, cost: float = 1.0) -> None:
        """429 with Retry-After when ``key`` has fewer than ``cost`` tokens left; else take them
        (``spend=False``: only look). A ``cost`` above the burst could never pass: 413."""
        if cost > self.burst:
            raise ApiError(413, "payload_too_large", f"{cost:.0f} exceeds what {self.what} may send at once "
                           f"({self.burst:.0f}); split it")
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(key, now)
            if tokens < cost:
                self._buckets[key] = (tokens, now)
                retry = max(1, int((cost - tokens) / self.rate + 0.999))
                raise ApiError(429, "rate_limited", f"rate limit exceeded for {self.what}",
                               headers={"Retry-After": str(retry)})
            if spend:
                self._buckets[key] = (tokens - cost, now)

    def spend(self, key: Hashable) -> None:
        """Take a token if one is left: counts a failure, so a later ``check`` refuses once they are spent."""
        now = time.monotonic()
        with self._lock:
            self._buckets[key] = (max(0.0, self._tokens(key, now) - 1.0), now)

    def _tokens(self, key: Hashable, now: float) -> float:
        if now - self._pruned_at > self.burst / self.rate:
            self._buckets = {k: (t, last) for k, (t, last) in self._buckets.items()
                             if t + (now - last) * self.rate < self.burst}
            self._pruned_at = now
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)


class SharedRateLimiter(RateLimiter):
    """:class:`RateLimiter`'s buckets kept in the database, so every API process on every machine
    spends one budget per key. A bucket is named by ``scope`` and the limits, so processes started
    with other limits (a rolling change) do not read each other's buckets."""

    PRUNE_EVERY_S = 60.0

    def __init__(self, engine: Engine, scope: str, rate_per_minute: int, burst: int, what: str = "this API key"):
        super().__init__(rate_per_minute, burst, what)
        self.engine = engine
        self.prefix = f"{scope}:{rate_per_minute}:{burst}:"

    def check(self, key: Hashable, *, spend: bool = True, cost: float = 1.0) -> None:
        if cost > self.burst:
            raise ApiError(413, "payload_too_large", f"{cost:.0f} exceeds what {self.what} may send at once "
                           f"({self.burst:.0f}); split it")
        granted, tokens = self._take(key, cost if spend else 0.0, cost)
        if not granted:
            retry = max(1, int((cost - tokens) / self.rate + 0.999))
            raise ApiError(429, "rate_limited", f"rate limit exceeded for {self.what}",
                           headers={"Retry-After": str(retry)})

    def spend(self, key: Hashable) -> None:
        self._take(key, 1.0, 0.0)

    def _take(self, key: Hashable, take: float, need: float) -> tuple[bool, float]:
        now = time.time()
        with self.engine.begin() as connection:
            if time.monotonic() - self._pruned_at > self.PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                queries.prune_full_buckets(connection, now)
            return queries.take_tokens(connection, f"{self.prefix}{key}"[:300], rate=self.rate, burst=self.burst,
                                       take=take, need=need, now=now)


def rate_limiter(engine: Engine | None, scope: str, rate_per_minute: int, burst: int,
                 what: str = "this API key") -> RateLimiter:
    """Shared through the database when ``engine`` is given, else counted in this process only."""
    if engine is None:
        return RateLimiter(rate_per_minute, burst, what)
    return SharedRateLimiter(engine, scope, rate_per_minute, burst, what)
