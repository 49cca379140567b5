"""``cxm serve``, ``cxm db upgrade``, ``cxm keys create|list|revoke``, ``cxm flag`` and ``cxm retry``."""

from __future__ import annotations

from datetime import datetime, timezone

import typer

from api.cli.app import app
from api.settings import get_settings

db_app = typer.Typer(help="The database (SQLite by default, PostgreSQL via CXM_DATABASE_URL).",
                     no_args_is_help=True)
keys_app = typer.Typer(help="API keys (roles: viewer, agent, ingest, admin).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def _sessions():
    from api.db.engine import make_engine, make_sessionmaker, migrate

    settings = get_settings()
    if settings.database_url.startswith("sqlite:///"):
        from pathlib import Path

        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url, settings)
    migrate(engine)
    return make_sessionmaker(engine)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (safe to repeat)."""
    _sessions()
    typer.echo(f"database at the newest revision: {get_settings().database_url.split('@')[-1]}", err=True)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="viewer, agent, ingest or admin."),
    name: str = typer.Option(None, "--name", help="Who holds the key (recorded in case audit trails)."),
    expires_days: int = typer.Option(None, "--expires-days", min=1, max=3650,
                                     help="The key stops working after this many days (default: never)."),
) -> None:
    """Print a new key once; only its hash is stored."""
    from api.auth import create_api_key, expiry_in_days
    from api.db.models import ROLES

    if role not in ROLES:
        typer.echo(f"error: unknown role {role!r}; choose from {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    with _sessions()() as session:
        key, secret = create_api_key(session, name or role, role, expiry_in_days(expires_days))
        session.commit()
    until = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
    typer.echo(f"created key {key.id} ({key.role}, {key.name}{until}); it is shown only now:", err=True)
    typer.echo(secret)


@keys_app.command("list")
def keys_list() -> None:
    from api.db import queries

    now = datetime.now(timezone.utc)
    with _sessions()() as session:
        for key in queries.list_api_keys(session):
            state = (f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active" if not key.expires_at
                     else f"{'expired' if key.expires_at <= now else 'active until'} {key.expires_at:%Y-%m-%d %H:%M} UTC")
            typer.echo(f"{key.id}\t{key.role}\t{key.name}\t{key.prefix}…\t{state}")


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    from api.auth import revoke_api_key

    with _sessions()() as session:
        if revoke_api_key(session, key_id) is None:
            typer.echo(f"error: no API key {key_id}", err=True)
            raise typer.Exit(2)
        session.commit()
    typer.echo(f"revoked key {key_id}", err=True)


@app.command()
def flag(rescore_all: bool = typer.Option(False, "--all", help="Re-score every customer, not only changed ones.")) -> None:
    """Re-score customers with new feedback and open cases above CXM_RISK_THRESHOLD (no duplicates).

    The churn model is CXM_CHURN_MODEL, else the latest one retraining activated, else the shipped one.
    """
    from api.services.retraining import churn_model_dir
    from api.services.risk import flag as run_flag
    from churn.model import ChurnModel

    settings = get_settings()
    with _sessions()() as session:
        model = ChurnModel.load(churn_model_dir(session, settings))
        outcome = run_flag(session, model, settings.risk_threshold, rescore_all=rescore_all,
                           cooldown_days=settings.case_cooldown_days, cases_per_day=settings.cases_per_day)
    typer.echo(f"scored {outcome.scored} customers as of {outcome.as_of:%Y-%m-%d %H:%M} ({outcome.as_of_rule}), "
               f"opened {outcome.cases_opened} cases ({outcome.already_open} already open, {outcome.recently_closed} "
               f"closed lately, {outcome.over_capacity} over CXM_CASES_PER_DAY) at risk >= {outcome.threshold:.2f}, "
               f"model {outcome.model_version}", err=True)
    if outcome.drift:
        typer.echo(f"features far from the model's training data (PSI): {outcome.drift}", err=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 for all)."),
    port: int = typer.Option(8000, min=1, max=65535),
    workers: int = typer.Option(1, min=1, help="Processes; each loads its own models."),
) -> None:
    """Run the HTTP API with uvicorn (models load once per process at start-up)."""
    import uvicorn

    _sessions()
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers)
