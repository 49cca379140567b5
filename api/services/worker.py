"""``cxm worker``: retraining runs, pending analyses and alerts, out of the API's serving processes.

Any number of workers may run: a run is claimed on a lease (``services.retraining``), and pending
feedback is leased in batches (``queries.claim_pending``: SKIP LOCKED on PostgreSQL), so workers
share the analysis queue without taking a row twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import sessionmaker

from api.db import queries
from api.errors import DATABASE_DOWN
from api.services import alerts
from api.services.analysis import model_versions, retry_pending
from api.services.retraining import RetrainOutcome, RunLost, run_queued, worker_name
from api.settings import Settings

log = logging.getLogger("cxm.worker")
ANALYSIS_BATCH = 64
"""Pending rows a worker leases and analyses at once: small enough that workers share a queue evenly."""


@dataclass
class WorkerPass:
    runs: list[RetrainOutcome] = field(default_factory=list)
    analysed: int = 0
    still_pending: int = 0


class Worker:
    """Claims queued retraining runs and retries pending analyses; ``load_analyzer`` runs on first need."""

    def __init__(self, sessions: sessionmaker, settings: Settings, load_analyzer: Callable[[], object]):
        self.sessions, self.settings, self._load_analyzer = sessions, settings, load_analyzer
        self.name = worker_name()
        self._analyzer = None
        self._versions: dict[str, str] = {}

    def run_once(self) -> WorkerPass:
        """Everything queued now: every queued run, then pending analyses until a pass makes no progress."""
        done = WorkerPass()
        try:
            done.runs = run_queued(self.sessions, self.settings, self.name)
        except RunLost as exc:
            log.error("%s", exc)
        while True:
            attempted, analysed, pending = self._retry_analyses()
            done.analysed += analysed
            done.still_pending = pending
            if not attempted or not analysed:
                return done

    def run_forever(self, stop: threading.Event) -> None:
        """Poll every CXM_WORKER_POLL_INTERVAL_S until ``stop``; a database outage is waited out."""
        next_alerts = 0.0
        while not stop.is_set():
            try:
                for outcome in run_queued(self.sessions, self.settings, self.name):
                    log.info("retraining run %s %s", outcome.run.id, outcome.run.status)
                if self.settings.analysis_retry_interval_s > 0 or not self.settings.analyze_on_ingest:
                    while not stop.is_set() and self._retry_analyses()[0] == ANALYSIS_BATCH:
                        pass  # a full batch: more may be queued
                if self.settings.alerts_interval_s > 0 and time.monotonic() >= next_alerts:
                    alerts.run(self.sessions, self.settings)
                    next_alerts = time.monotonic() + self.settings.alerts_interval_s
            except DATABASE_DOWN as exc:
                log.warning("database unavailable (%s); trying again", type(getattr(exc, "orig", exc)).__name__)
            except RunLost as exc:
                log.error("%s", exc)
            stop.wait(self.settings.worker_poll_interval_s)

    def _retry_analyses(self) -> tuple[int, int, int]:
        """One pass over pending rows: attempted, analysed, still pending."""
        with self.sessions() as session:
            if not queries.feedback_to_analyse(session, self.settings.analysis_max_attempts, 1):
                return 0, 0, 0
        if self._analyzer is None:
            self._analyzer = self._load_analyzer()
            self._versions = model_versions(self.settings, self._analyzer)
        attempted, outcome = retry_pending(self.sessions, self._analyzer, self._versions,
                                           self.settings.analysis_max_attempts, limit=ANALYSIS_BATCH,
                                           lease_s=self.settings.worker_lease_s,
                                           retry_after_s=self.settings.analysis_retry_interval_s)
        if attempted:
            log.info("analysed %d pending feedback rows (%d still pending, %d failed)",
                     outcome.analysed, outcome.pending, outcome.failed)
        return attempted, outcome.analysed, outcome.pending
