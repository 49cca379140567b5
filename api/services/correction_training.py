"""Retrain the text model's sentiment or reason head from agents' corrections; activate it only if better.

Corrections are split for good by a hash of the feedback id: a fifth are held out, never trained on,
and decide. The head is refitted (``nlp.head_refit``) on the other corrections (weighted up) plus the
hand-written rows shipped in ``data/cx``; the candidate and the model in service are scored on the
held-out corrections and the candidate is saved under ``<model dir>/text-models/<version>`` and
activated only when it scores higher. Every run is a ``model_runs`` row (kind ``sentiment`` or
``reasons``) with both figures. API processes serve the latest activated text model from their next
start, unless ``CXM_SENTIMENT_MODEL`` pins one.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.db import queries
from api.db.models import ModelRun
from api.services.retraining import Lease, RetrainInProgress, finish_run, worker_name
from api.settings import Settings
from nlp.head_refit import (
    pooled_features,
    reason_probabilities,
    refit_reasons,
    refit_sentiment,
    sentiment_probabilities,
)
from nlp.pipeline import BUILTIN
from nlp.results import SENTIMENT_LABELS
from nlp.sentiment_model import BUILTIN_SENTIMENT_DIR, WEIGHTS_FILE, TransformerSentiment
from nlp.text_data import HANDWRITTEN_DIR, handwritten_rows

log = logging.getLogger("cxm.api")

KINDS = ("sentiment", "reasons")
HELD_OUT_SHARE = 0.2
MIN_HELD_OUT = 5
MIN_TRAIN = 5


def held_out(feedback_id: int) -> bool:
    """Whether corrections of this item are kept for evaluation: the same answer in every run, for good."""
    digest = hashlib.sha256(f"cxm-corrections:{feedback_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HELD_OUT_SHARE


def text_model_source(session: Session, settings: Settings) -> str:
    """The text model to serve: ``CXM_SENTIMENT_MODEL`` when it names a directory, else the latest one
    retraining from corrections activated (still on disk), else the shipped one."""
    if settings.sentiment_model != BUILTIN:
        return settings.sentiment_model
    for run in sorted((r for kind in KINDS for r in queries.activated_model_runs(session, kind)), key=lambda r: -r.id):
        if run.path and Path(run.path).is_dir():
            return run.path
        log.warning("activated text model of run %s is gone (%s); trying an earlier one", run.id, run.path)
    return BUILTIN


def load_served(session: Session, settings: Settings, encoder) -> TransformerSentiment:
    source = text_model_source(session, settings)
    return TransformerSentiment.load(BUILTIN_SENTIMENT_DIR if source == BUILTIN else source, encoder)


def _corrections(session: Session, kind: str) -> pd.DataFrame:
    """The latest correction of ``kind`` per feedback item with a text: text, label and whether held out."""
    rows = [(f.id, f.text, c.new_value, held_out(f.id)) for c, f in queries.corrected_feedback(session, kind)
            if (f.text or "").strip()]
    return pd.DataFrame(rows, columns=["feedback_id", "text", "label", "held_out"])


def _shipped(kind: str, cx_dir: Path, rows: int | None) -> pd.DataFrame:
    """The hand-written training rows (never the evaluation files), or a fixed sample of ``rows`` of them."""
    frame = handwritten_rows(cx_dir, seed=0, valid_fraction=0.0)
    frame = frame.assign(label=frame["sentiment"] if kind == "sentiment" else frame["reasons"])[["text", "label"]]
    return frame if rows is None or rows >= len(frame) else frame.sample(n=rows, random_state=0)


def _score(kind: str, model: TransformerSentiment, features: np.ndarray, labels: list) -> float:
    """Held-out accuracy (sentiment) or micro-F1 over the head's reason ids (reasons)."""
    if kind == "sentiment":
        predicted = sentiment_probabilities(model, features).argmax(axis=1)
        return float(np.mean([SENTIMENT_LABELS[p] == y for p, y in zip(predicted, labels)]))
    ids = list(model.reason_ids)
    predicted = reason_probabilities(model, features) >= model.reason_threshold
    truth = np.array([[i in set(y) for i in ids] for y in labels], dtype=bool)
    tp = int((predicted & truth).sum())
    return 2 * tp / max(int(predicted.sum() + truth.sum()), 1) if truth.any() or predicted.any() else 1.0


def _save(model: TransformerSentiment, root: Path, run_id: int, kind: str) -> Path:
    """Save under ``root/<kind>-<hash of the weights>`` (staged, then renamed)."""
    staging = root / f".run-{run_id}"
    model.save(staging)
    version = f"{kind}-{hashlib.sha256((staging / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]}"
    target = root / version
    if target.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(target)
    return target


def _train(kind: str, sessions: sessionmaker, settings: Settings, current: TransformerSentiment, run_id: int,
           cx_dir: Path, shipped_rows: int | None, correction_weight: float) -> dict:
    """The run's outcome fields."""
    with sessions() as session:
        corrections = _corrections(session, kind)
    test, train = corrections[corrections["held_out"]], corrections[~corrections["held_out"]]
    if len(test) < MIN_HELD_OUT or len(train) < MIN_TRAIN:
        return {"status": "failed", "error": f"too few {kind} corrections: {len(train)} to train on and {len(test)} "
                f"held out (by a hash of the feedback id); need at least {MIN_TRAIN} and {MIN_HELD_OUT}"}
    shipped = _shipped(kind, cx_dir, shipped_rows)
    texts = [*shipped["text"], *train["text"]]
    labels = [*shipped["label"], *train["label"]]
    weight = np.r_[np.ones(len(shipped)), np.full(len(train), correction_weight)]
    about = {"corrections": len(train), "shipped_rows": len(shipped), "correction_weight": correction_weight}
    refit = refit_sentiment if kind == "sentiment" else refit_reasons
    candidate = refit(current, pooled_features(current, texts), labels, weight, about=about)
    held = pooled_features(current, test["text"].tolist())
    metric = "accuracy" if kind == "sentiment" else "micro_f1"
    figures = {metric: round(_score(kind, candidate, held, test["label"].tolist()), 4)}
    baseline = {metric: round(_score(kind, current, held, test["label"].tolist()), 4),
                "model": str(current.source or "in memory"), "held_out": len(test)}
    metrics = {**figures, "held_out": len(test), **about}
    path = _save(candidate, settings.model_dir / "text-models", run_id, kind)
    better = figures[metric] > baseline[metric]
    note = None if better else (
        f"held-out {metric} {figures[metric]:.4f} vs {baseline[metric]:.4f} for the model in service on the same "
        f"{len(test)} corrections: not better, kept the model in service")
    return {"status": "succeeded" if better else "rejected", "error": note, "model_version": path.name,
            "path": str(path), "metrics": metrics, "baseline": baseline, "activated": better}


def retrain_from_corrections(sessions: sessionmaker, settings: Settings, current: TransformerSentiment, kind: str,
                             requested_by: str, *, cx_dir: Path = HANDWRITTEN_DIR, shipped_rows: int | None = None,
                             correction_weight: float = 5.0) -> ModelRun:
    """One run in this process, on a lease like a worker's; :class:`RetrainInProgress` if one of ``kind`` runs.

    Args:
        current: the text model in service (:func:`load_served`).
        kind: ``sentiment`` or ``reasons``: the head to refit.
        cx_dir: the shipped hand-written training rows.
        shipped_rows: a fixed sample of that many shipped rows (None: all; fewer is faster, for trials).
        correction_weight: loss weight of a correction (a shipped row weighs 1).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    worker, now = worker_name(), datetime.now(timezone.utc)
    with sessions() as session:
        try:
            run = queries.add_model_run(session, ModelRun(kind=kind, status="running", requested_by=requested_by,
                                                          started_at=now, activated=False, force=False,
                                                          claimed_by=worker, heartbeat_at=now))
            session.commit()
        except IntegrityError:
            session.rollback()
            active = queries.active_model_run(session, kind)
            raise RetrainInProgress(active.id if active is not None else None) from None
        run_id = run.id
    with Lease(sessions, run_id, worker, settings.worker_lease_s):
        try:
            fields = _train(kind, sessions, settings, current, run_id, cx_dir, shipped_rows, correction_weight)
        except (ValueError, FileNotFoundError) as exc:
            fields = {"status": "failed", "error": str(exc)}
        except Exception as exc:
            log.exception("retraining run %s from corrections failed", run_id)
            fields = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        run = finish_run(sessions, run_id, worker, settings.worker_lease_s, **fields)
    log.info("%s retraining run %s from corrections %s: %s vs %s in service", kind, run_id, run.status,
             run.metrics, run.baseline)
    return run
