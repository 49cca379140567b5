"""Retrain the churn model on the stored history and outcomes; put it into service only if it is not worse.

A run is recorded before it starts (one at a time, enforced by a unique index), trains off the
event loop, is compared with the model in service on the new model's own validation cutoffs, and
is saved under ``model_dir/churn/<version>``. At start-up the latest activated run is what the
service loads, unless ``CXM_CHURN_MODEL`` pins a model.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.db import queries
from api.db.models import Feedback, ModelRun
from api.runtime import Runtime
from api.services.risk import churn_tables, live_drift, model_version, resolve_as_of
from api.settings import Settings
from churn.model import ChurnModel
from churn.persistence import load_model, save_model
from churn.schema import ChurnTables
from churn.text_features import HEADS
from churn.training import evaluate, train_churn_model
from nlp.reason_taxonomy import load_taxonomy

log = logging.getLogger("cxm.api")

KIND = "churn"
INTERRUPTED = "interrupted: the process stopped before the run finished"


class RetrainInProgress(Exception):
    """Another run is still training (in this process or another one)."""

    def __init__(self, run_id: int | None):
        super().__init__(f"retraining run {run_id} is still running")
        self.run_id = run_id


@dataclass
class RetrainOutcome:
    run: ModelRun
    model: ChurnModel | None
    """The new model when it was activated, else None."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def start_run(session: Session, requested_by: str) -> ModelRun:
    """Record a running run; :class:`RetrainInProgress` if one is already running."""
    run = ModelRun(kind=KIND, status="running", requested_by=requested_by, started_at=_now(), activated=False)
    try:
        queries.add_model_run(session, run)
        session.commit()
    except IntegrityError:
        session.rollback()
        running = queries.running_model_run(session, KIND)
        raise RetrainInProgress(running.id if running is not None else None) from None
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
    save_model(model, staging, card)
    loaded = load_model(staging)
    target = root / model_version(loaded)
    if target.exists():  # the same artefact trained before: keep the directory already in use
        shutil.rmtree(staging)
    else:
        staging.rename(target)
    return loaded, target


def train_run(sessions: sessionmaker, run_id: int, settings: Settings, current: ChurnModel, *,
              force: bool = False) -> RetrainOutcome:
    """Train, compare with ``current``, save, and record the outcome on run ``run_id``.

    The new model is activated when its validation PR-AUC is at most ``retrain_min_pr_auc_gain``
    below ``current``'s on the same cutoffs, when ``current`` cannot be measured there, or when
    ``force``. A data problem (too little history, one class only) records the run as failed with
    the message; an unexpected error does too, with its type, and is logged. Every run's
    ``baseline`` names the model in service and the features of today's customers that drifted
    far from its training data (``drift``), failed runs included: the usual reason to retrain.
    """
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
        return RetrainOutcome(_finish(sessions, run_id, status="failed", error=str(exc), baseline=serving), None)
    except Exception as exc:
        log.exception("retraining run %s failed", run_id)
        error = f"{type(exc).__name__}: {exc}"
        return RetrainOutcome(_finish(sessions, run_id, status="failed", error=error, baseline=serving), None)
    metrics, note = result.card["metrics"], None
    if baseline["comparable"]:
        gain = round(metrics["pr_auc"] - baseline["metrics"]["pr_auc"], 4)
        baseline["pr_auc_gain"] = gain
        if gain < settings.retrain_min_pr_auc_gain:
            note = (f"validation PR-AUC {metrics['pr_auc']:.4f} vs {baseline['metrics']['pr_auc']:.4f} for the "
                    f"model in service: a change of {gain:+.4f}, below CXM_RETRAIN_MIN_PR_AUC_GAIN "
                    f"({settings.retrain_min_pr_auc_gain:+.4f}); retrain with force=true to activate it anyway")
    activate = force or note is None
    run = _finish(sessions, run_id, status="succeeded" if activate else "rejected",
                  error=None if activate else note, model_version=model_version(model), path=str(path),
                  metrics=metrics, baseline=baseline, activated=activate)
    return RetrainOutcome(run, model if activate else None)


def _finish(sessions: sessionmaker, run_id: int, **fields) -> ModelRun:
    with sessions() as session:
        run = queries.get_model_run(session, run_id)
        for name, value in fields.items():
            setattr(run, name, value)
        run.finished_at = _now()
        session.commit()
    return run


def retrain(sessions: sessionmaker, settings: Settings, current: ChurnModel, requested_by: str, *,
            force: bool = False) -> RetrainOutcome:
    """One run from start to finish in this thread (the command line)."""
    with sessions() as session:
        run = start_run(session, requested_by)
    return train_run(sessions, run.id, settings, current, force=force)


def start_retraining(runtime: Runtime, requested_by: str, *, force: bool = False) -> ModelRun:
    """Record a run and train in a background thread; an activated model replaces the one in service."""
    with runtime.sessions() as session:
        run = start_run(session, requested_by)

    def work() -> None:
        outcome = train_run(runtime.sessions, run.id, runtime.settings, runtime.models.churn_model, force=force)
        if outcome.model is not None:
            runtime.models = replace(runtime.models, churn_model=outcome.model)

    threading.Thread(target=work, name=f"cxm-retrain-{run.id}", daemon=True).start()
    return run


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


def fail_interrupted_runs(session: Session) -> int:
    """Runs a crash or restart left ``running`` can never finish: record them as failed."""
    count = queries.fail_running_model_runs(session, INTERRUPTED, _now())
    session.commit()
    return count
