"""One app per database (a real SQLite file and a fresh PostgreSQL database), sharing one set of models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import create_api_key
from api.runtime import Models
from api.services.worker import Worker
from churn.model import ChurnModel
from nlp.analyzer import FeedbackAnalyzer

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
ROLES = ("viewer", "agent", "ingest", "admin")


class BrokenAnalyzer:
    """A real analyzer stand-in whose model fails, as a crashed model server would."""

    def analyze(self, texts: Sequence[str | None]):
        raise RuntimeError("model unavailable")


@pytest.fixture(scope="session")
def models(encoder, language_detector) -> Models:
    """The real pipeline with language identification only (fast); the shipped churn model."""
    return Models(analyzer=FeedbackAnalyzer(encoder, language_detector), churn_model=ChurnModel.load())


@contextmanager
def postgres_database():
    """A uniquely named database, dropped afterwards; unreachable PostgreSQL fails."""
    name = f"cxm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url():
    """The database this session's PostgreSQL tests share."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'cxm.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def new_database(database_url, tmp_path_factory):
    """Makes empty databases of ``database_url``'s kind, for tests whose results depend on all the data."""
    with ExitStack() as stack:
        def make() -> str:
            if database_url.startswith("sqlite"):
                return f"sqlite:///{tmp_path_factory.mktemp('db') / 'cxm.db'}"
            return stack.enter_context(postgres_database())

        yield make


def make_settings(settings, database_url: str, **overrides):
    """Limits that many test files sharing one database and one client address would trip are off
    (each limit has a test of its own, over its own app or database)."""
    return settings.model_copy(update={
        "database_url": database_url, "analysis_retry_interval_s": 0.0,
        "api_rate_limit_burst": 10_000, "api_rate_limit_per_minute": 100_000,
        "api_failed_auth_per_minute": 10_000, "api_analyze_chars_per_minute": 10_000_000, "cases_per_day": 0,
        **overrides})


class Api:
    """A TestClient plus one key per role, made with the same function `cxm keys create` uses."""

    def __init__(self, client: TestClient):
        self.client = client
        self.app = client.app
        runtime = client.app.state.runtime
        self.keys = {}
        with runtime.sessions() as session:
            for role in ROLES:
                self.keys[role] = create_api_key(session, f"{role}-{uuid.uuid4().hex[:6]}", role)[1]
            session.commit()

    def call(self, method: str, path: str, role: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if role is not None:
            headers["X-API-Key"] = self.keys[role]
        return self.client.request(method, path, headers=headers, **kwargs)


@contextmanager
def serve(settings, database_url: str, models, **overrides):
    """An app over ``database_url`` (started and stopped like the real one) and keys for it."""
    with TestClient(create_app(make_settings(settings, database_url, **overrides), models=models)) as client:
        yield Api(client)


@pytest.fixture(scope="session")
def api(settings, database_url, models):
    with serve(settings, database_url, models) as api:
        yield api


@pytest.fixture
def limited_api(settings, database_url, models):
    """Same database, tight limits: small bodies and batches, a burst of 3 requests per key."""
    tight = make_settings(settings, database_url, api_max_body_bytes=4096, api_max_batch=3,
                          api_rate_limit_burst=3, api_rate_limit_per_minute=1)
    with TestClient(create_app(tight, models=models)) as client:
        yield Api(client)


def finished(api, run_id: int) -> dict:
    """The run once a worker has processed the queue (in this process, as `cxm worker --once` would)."""
    runtime = api.app.state.runtime
    Worker(runtime.sessions, runtime.settings, lambda: runtime.models.analyzer).run_once()
    run = api.call("GET", f"/v1/admin/runs/{run_id}", "admin").json()
    assert run["status"] not in ("queued", "running"), run
    return run
