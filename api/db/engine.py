"""Engines and schema migrations: the app and the CLI call ``migrate`` at start."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from api.settings import Settings


def make_engine(url: str, settings: Settings | None = None) -> Engine:
    """An engine whose waits are bounded by ``settings``' database timeouts (default: their defaults).

    A PostgreSQL outage then fails a request within the connect or pool timeout (a 503 for the
    client), and a stale pooled connection is replaced on checkout once the server is back.
    Errors never carry bound parameters (customer text) into logs.
    """
    limits = settings or Settings.model_construct()
    if url.startswith("sqlite"):
        busy_ms = int(limits.database_lock_timeout_s * 1000)
        engine = create_engine(url, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": limits.database_lock_timeout_s})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        return engine
    options = (f"-c statement_timeout={int(limits.database_statement_timeout_s * 1000)} "
               f"-c lock_timeout={int(limits.database_lock_timeout_s * 1000)}")
    return create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=10,
                         pool_timeout=limits.database_pool_timeout_s,
                         connect_args={"connect_timeout": limits.database_connect_timeout_s, "options": options})


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    package = resources.files("api")
    config = Config(str(package / "alembic.ini"))
    config.set_main_option("script_location", str(package / "migrations"))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    command.upgrade(alembic_config(engine), "head")
