"""Retrain the churn model on the stored history and outcomes; put it into service only if it is not worse.

The API queues a run (one queued or running at a time, enforced by a unique index); a ``cxm worker``
claims it on a lease, trains, compares with the model in service on the new model's own
validation cutoffs, and saves it under ``model_dir/churn/<version>``. While it trains the worker
beats ``heartbeat_at``; a run whose worker stopped beating is recorded failed, and only the
holder of a run may record its outcome. API processes serve the latest activated run's model
(checked at start, on flag and periodically) unless ``CXM_CHURN_MODEL`` pins one.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.db import queries
from api.db.models import Feedback, ModelRun
from api.errors import DATABASE_DOWN
from api.runtime import Runtime
from api.services.risk import churn_tables, live_drift, model_version, resolve_as_of
from api.settings import Settings
from churn.model import ChurnModel
from churn.schema import ChurnTables
from churn.text_features import HEADS
from churn.training import evaluate, train_churn_model
from nlp.reason_taxonomy import load_taxonomy

log = logging.getLogger("cxm.api")

KIND = "churn"
INTERRUPTED = "interrupted: its worker sent no heartbeat for {lease_s:g} s (it stopped, or lost the database)"


class RetrainInProgress(Exception):
    """Another run is queued or still training (in any process)."""

    def __init__(self, run_id: int | None):
        super().__init__(f"retraining run {run_id} is still queued or running")
        self.run_id = run_id


class RunLost(Exception):
    """The worker's lease on a run expired (it was recorded failed): its outcome is not written."""

    def __init__(self, run_id: int, status: str):
        super().__init__(f"retraining run {run_id} is no longer held by this worker (now {status})")


@dataclass
class RetrainOutcome:
    run: ModelRun
    model: ChurnModel | None
    """The new model when it was activated, else None."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def worker_name() -> str:
    """Who holds a run: host, process and a random suffix (a restarted process is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def fail_stale_runs(session: Session, settings: Settings) -> int:
    """Record running runs whose worker stopped beating as failed (committed); never a live one."""
    count = queries.fail_stale_model_runs(session, _now() - timedelta(seconds=settings.worker_lease_s),
                                          INTERRUPTED.format(lease_s=settings.worker_lease_s), _now())
    session.commit()
    if count:
        log.warning("%d retraining run(s) lost their worker; recorded as failed", count)
    return count


def _add(session: Session, settings: Settings, run: ModelRun) -> ModelRun:
    fail_stale_runs(session, settings)
    try:
        queries.add_model_run(session, run)
        session.commit()
    except IntegrityError:
        session.rollback()
        active = queries.active_model_run(session, KIND)
        raise RetrainInProgress(active.id if active is not None else None) from None
    return run


def queue_run(session: Session, settings: Settings, requested_by: str, *, force: bool = False) -> ModelRun:
    """Record a run for a ``cxm worker`` to train; :class:`RetrainInProgress` if one is queued or running."""
    return _add(session, settings, ModelRun(kind=KIND, status="queued", requested_by=requested_by,
                                            started_at=_now(), activated=False, force=force))


def start_run(session: Session, settings: Settings, requested_by: str, worker: str, *,
              force: bool = False) -> ModelRun:
    """Record a run that ``worker`` trains now (the command line); :class:`RetrainInProgress` as above."""
    now = _now()
    return _add(session, settings, ModelRun(kind=KIND, status="running", requested_by=requested_by, started_at=now,
                                            activated=False, force=force, claimed_by=worker, heartbeat_at=now))


def claim_run(sessions: sessionmaker, settings: Settings, worker: str) -> ModelRun | None:
    """The queued run, now running for ``worker``, or None; stale runs are failed first."""
    with sessions() as session:
        fail_stale_runs(session, settings)
        run = queries.claim_model_run(session, KIND, worker, _now())
        session.commit()
    return run


def _heads(rows: list[Feedback]) -> list[str]:
    """The churn-relevant analysis heads that produced the stored analyses (recorded on the card)."""
    ran = {head for row in rows if row.status == "analysed" and row.model_versions
           for head in str(row.model_versions.get("heads", "")).split(",")}
    return [head for head in HEADS if head in ran]


def stored_history(session: Session, reason_ids: list[str]) -> tuple[ChurnTables, list[str]]:
    """Every customer, feedback row and outcome as ``churn.schema`` tables, and the text heads behind them."""
    rows = queries.all_feedback(session)
    tables = churn_tables(queries.customers_to_score(session, only_flagged=False), rows, reason_ids,
                          queries.churn_outcomes(session))
    return tables, _heads(rows)


def compare(current: ChurnModel, tables: ChurnTables, card: dict) -> dict:
    """The model in service on the new model's validation cutoffs, or why it cannot be measured there."""
    baseline = {"model_version": model_version(current)}
    cutoffs = [pd.Timestamp(c) for c in card["data"]["validation_cutoffs"]]
    try:
        return {**baseline, "comparable": True, "metrics": evaluate(current, tables, cutoffs)}
    except (KeyError, ValueError) as exc:  # other features, another horizon, labels it cannot see
        return {**baseline, "comparable": False, "reason": f"baseline not comparable: {exc}"}


def _drift(current: ChurnModel, tables: ChurnTables, as_of: datetime) -> dict[str, float] | str:
    """Where today's customers sit far from the training data of the model in service (why to retrain)."""
    try:
        return live_drift(current, tables, as_of)
    except (KeyError, ValueError) as exc:  # a model on other features or reasons
        return f"not measurable: {exc}"


def _save(model: ChurnModel, card: dict, root: Path, run_id: int) -> tuple[ChurnModel, Path]:
    """Save under ``root/<version>`` (staged, then renamed) and load it back as start-up would."""
    staging = root / f".run-{run_id}"
    model.save(staging, card)
    loaded = ChurnModel.load(staging)
    target = root / model_version(loaded)
    if target.exists():  # the same artefact trained before: keep the directory already in use
        shutil.rmtree(staging)
    else:
        staging.rename(target)
    return loaded, target


class Lease:
    """Beats the run's ``heartbeat_at`` from a thread, every quarter of the lease, while the run trains."""

    def __init__(self, sessions: sessionmaker, run_id: int, worker: str, lease_s: float):
        self.sessions, self.run_id, self.worker, self.lease_s = sessions, run_id, worker, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"cxm-lease-{run_id}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                with self.sessions() as session:
                    held = queries.update_claimed_model_run(session, self.run_id, self.worker, heartbeat_at=_now())
                    session.commit()
            except DATABASE_DOWN:
                log.warning("heartbeat of retraining run %s failed (database unavailable); trying again", self.run_id)
                continue
            if not held:
                log.warning("retraining run %s is no longer held by %s", self.run_id, self.worker)
                return


def train_run(sessions: sessionmaker, run_id: int, settings: Settings, current: ChurnModel, worker: str, *,
              force: bool = False) -> RetrainOutcome:
    """Train, compare with ``current``, save, and record the outcome on run ``run_id``, held by ``worker``.

    The new model is activated when its validation PR-AUC is at most ``retrain_min_pr_auc_gain``
    below ``current``'s on the same cutoffs, when ``current`` cannot be measured there, or when
    ``force``. A data problem (too little history, one class only) records the run as failed with
    the message; an unexpected error does too, with its type, and is logged. Every run's
    ``baseline`` names the model in service and the features of today's customers that drifted
    far from its training data (``drift``), failed runs included: the usual reason to retrain.
    :class:`RunLost` when the lease expired before the outcome could be written.
    """
    with Lease(sessions, run_id, worker, settings.worker_lease_s):
        fields, model = _train(sessions, run_id, settings, current, force)
        run = finish_run(sessions, run_id, worker, settings.worker_lease_s, **fields)
    return RetrainOutcome(run, model)


def _train(sessions: sessionmaker, run_id: int, settings: Settings, current: ChurnModel,
           force: bool) -> tuple[dict, ChurnModel | None]:
    """The outcome's fields, and the new model when it is activated."""
    serving = {"model_version": model_version(current)}
    try:
        reason_ids = list(load_taxonomy(settings.reason_taxonomy).ids)
        with sessions() as session:
            tables, heads = stored_history(session, reason_ids)
            as_of, _ = resolve_as_of(session, None, _now())
        serving["drift"] = _drift(current, tables, as_of)
        result = train_churn_model(tables, reason_ids, text_heads=heads,
                                   source=f"cxm database ({len(tables.customers)} customers)")
        baseline = {**compare(current, tables, result.card), **serving}
        model, path = _save(result.model, result.card, settings.model_dir / "churn", run_id)
    except ValueError as exc:
        return {"status": "failed", "error": str(exc), "baseline": serving}, None
    except Exception as exc:
        log.exception("retraining run %s failed", run_id)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "baseline": serving}, None
    metrics, note = result.card["metrics"], None
    if baseline["comparable"]:
        gain = round(metrics["pr_auc"] - baseline["metrics"]["pr_auc"], 4)
        baseline["pr_auc_gain"] = gain
        if gain < settings.retrain_min_pr_auc_gain:
            note = (f"validation PR-AUC {metrics['pr_auc']:.4f} vs {baseline['metrics']['pr_auc']:.4f} for the "
                    f"model in service: a change of {gain:+.4f}, below CXM_RETRAIN_MIN_PR_AUC_GAIN "
                    f"({settings.retrain_min_pr_auc_gain:+.4f}); retrain with force=true to activate it anyway")
    activate = force or note is None
    fields = {"status": "succeeded" if activate else "rejected", "error": None if activate else note,
              "model_version": model_version(model), "path": str(path), "metrics": metrics,
              "baseline": baseline, "activated": activate}
    return fields, model if activate else None


def finish_run(sessions: sessionmaker, run_id: int, worker: str, retry_s: float, **fields) -> ModelRun:
    """Write the outcome while ``worker`` holds the run, retrying a lost database for up to ``retry_s``.

    Past that the run stops beating, goes stale and is recorded failed: never ``running`` for ever.
    """
    fields["finished_at"] = _now()
    give_up, delay = time.monotonic() + retry_s, 0.5
    while True:
        try:
            with sessions() as session:
                written = queries.update_claimed_model_run(session, run_id, worker, **fields)
                session.commit()
                run = queries.get_model_run(session, run_id)
        except DATABASE_DOWN:
            if time.monotonic() + delay > give_up:
                raise
            log.warning("recording the outcome of retraining run %s failed (database unavailable); retrying", run_id)
            time.sleep(delay)
            delay = min(2 * delay, 5.0)
            continue
        # A commit whose answer was lost may have written the outcome on an earlier attempt.
        if written or (run.claimed_by == worker and (run.status, run.error) == (fields["status"], fields["error"])):
            return run
        raise RunLost(run_id, run.status)


def retrain(sessions: sessionmaker, settings: Settings, current: ChurnModel, requested_by: str, *,
            force: bool = False) -> RetrainOutcome:
    """One run from start to finish in this process (the command line), on a lease like a worker's."""
    worker = worker_name()
    with sessions() as session:
        run = start_run(session, settings, requested_by, worker, force=force)
    return train_run(sessions, run.id, settings, current, worker, force=force)


def run_queued(sessions: sessionmaker, settings: Settings, worker: str) -> list[RetrainOutcome]:
    """Claim and train queued runs until none is left; each against the model in service when claimed."""
    outcomes = []
    while (run := claim_run(sessions, settings, worker)) is not None:
        with sessions() as session:
            current = ChurnModel.load(churn_model_dir(session, settings))
        outcomes.append(train_run(sessions, run.id, settings, current, worker, force=run.force))
    return outcomes


def serve_latest_model(runtime: Runtime) -> bool:
    """Load the churn model a worker activated since this process loaded its own; True if it changed."""
    with runtime.sessions() as session:
        latest = churn_model_dir(session, runtime.settings)
    if latest == runtime.churn_dir:
        return False
    runtime.models = replace(runtime.models, churn_model=ChurnModel.load(latest))
    runtime.churn_dir = latest
    log.info("serving churn model %s", latest or "shipped with cxm")
    return True


def churn_model_dir(session: Session, settings: Settings) -> Path | None:
    """The churn model to serve: ``CXM_CHURN_MODEL``, else the latest activated run still on disk.

    None means the model shipped with cxm.
    """
    if settings.churn_model is not None:
        return settings.churn_model
    for run in queries.activated_model_runs(session, KIND):
        if run.path and Path(run.path).is_dir():
            return Path(run.path)
        log.warning("activated churn model of run %s is gone (%s); trying an earlier one", run.id, run.path)
    return None
