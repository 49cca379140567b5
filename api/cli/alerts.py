"""``cxm alerts run``: evaluate the alert rules and send the due webhooks once (for cron)."""

from __future__ import annotations

import typer

from api.cli.app import app
from api.settings import get_settings

alerts_app = typer.Typer(help="Alerts: rules are managed through /v1/admin/alerts/rules.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("run")
def alerts_run() -> None:
    """Evaluate every enabled rule (each condition fires once) and send the alerts whose delivery is due.

    Exit code 0, or 1 when an alert was given up this run after CXM_ALERTS_MAX_ATTEMPTS calls; failed
    calls with attempts left are retried by the next run after their backoff.
    """
    from api.cli.serve import _sessions
    from api.services.alerts import run

    done = run(_sessions(), get_settings())
    d = done.delivery
    typer.echo(f"{done.rules} rules evaluated; alerts fired: {done.fired}, delivered: {d.delivered}, "
               f"to retry: {d.retrying}, given up: {d.failed}", err=True)
    if d.failed:
        raise typer.Exit(1)
