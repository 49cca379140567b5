"""``cxm worker``: trains queued retraining runs and retries pending analyses, beside the API."""

from __future__ import annotations

import logging
import signal
import threading

import typer

from api.cli.app import app
from api.settings import get_settings


@app.command()
def worker(once: bool = typer.Option(False, "--once", help="Process what is queued now, then exit.")) -> None:
    """Claim queued retraining runs (on a lease: run any number of workers), analyse pending feedback and,
    every CXM_ALERTS_INTERVAL_S, evaluate the alert rules and send due webhooks.

    API processes only queue runs and load the models a worker activates; stop with SIGTERM or Ctrl-C
    (a run in training is then failed once its lease, CXM_WORKER_LEASE_S, runs out).
    """
    from api.cli.serve import _sessions
    from api.components import build_analyzer
    from api.services.correction_training import text_model_source
    from api.services.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    sessions = _sessions()
    with sessions() as session:  # the text model the API serves: pinned, else the latest retrained from corrections
        served = settings.model_copy(update={"sentiment_model": text_model_source(session, settings)})
    runner = Worker(sessions, settings, lambda: build_analyzer(served))
    if once:
        done = runner.run_once()
        statuses = ", ".join(f"run {o.run.id} {o.run.status}" for o in done.runs) or "no queued runs"
        typer.echo(f"{statuses}; analysed {done.analysed} pending feedback rows ({done.still_pending} still pending)",
                   err=True)
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo(f"worker {runner.name} polling every {settings.worker_poll_interval_s:g} s", err=True)
    try:
        runner.run_forever(stop)
    except KeyboardInterrupt:
        pass
