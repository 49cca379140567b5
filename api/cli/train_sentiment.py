"""``cxm train sentiment``: reproduce the shipped text model (sentiment, reasons, churn intent)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from api.cli.app import fail, train_app
from api.components import build_encoder
from api.settings import get_settings
from nlp.reason_taxonomy import load_taxonomy
from nlp.sentiment_training import TextModelTrainer
from nlp.text_data import HANDWRITTEN_DIR, describe, load_text_training_data


def from_corrections(kind: str, shipped_rows: int | None, correction_weight: float) -> None:
    """Refit the served text model's ``kind`` head on the service's corrections; activate it if better."""
    from api.cli.serve import _sessions
    from api.services.correction_training import load_served, retrain_from_corrections
    from api.services.retraining import RetrainInProgress, RunLost

    settings = get_settings()
    if kind == "reasons" and settings.reason_model is not None:
        raise fail(f"reasons are served by the few-shot head in {settings.reason_model} (CXM_REASON_MODEL), not "
                   "the text model's: retrain that with `cxm train reasons ROWS -o DIR`, or unset it")
    sessions = _sessions()
    with sessions() as session:
        current = load_served(session, settings, build_encoder(settings))
    try:
        run = retrain_from_corrections(sessions, settings, current, kind, f"cxm train {kind} --from-corrections",
                                       shipped_rows=shipped_rows, correction_weight=correction_weight)
    except (RetrainInProgress, RunLost) as exc:
        raise fail(str(exc)) from exc
    if run.status == "failed":
        raise fail(f"run {run.id} failed: {run.error}")
    metric = "accuracy" if kind == "sentiment" else "micro_f1"
    verdict = (f"activated -> {run.path} (API processes and `cxm worker` serve it from their next start)"
               if run.activated else f"not activated: {run.error}")
    typer.echo(f"run {run.id} {run.status}: held-out {metric} {run.metrics[metric]:.3f} on {run.metrics['held_out']} "
               f"corrections vs {run.baseline[metric]:.3f} for the model in service; trained on "
               f"{run.metrics['corrections']} corrections and {run.metrics['shipped_rows']} shipped rows; {verdict}",
               err=True)


@train_app.command("sentiment")
def train_sentiment(
    output: Path | None = typer.Option(None, "-o", "--output", help="Directory for config.json + model.safetensors."),
    from_corrections_: bool = typer.Option(
        False, "--from-corrections", help="Refit only the served model's sentiment head on the service's "
        "corrections plus data/cx; activate it if it beats the served one on held-out corrections."),
    shipped_rows: int | None = typer.Option(None, min=1, help="--from-corrections: a fixed sample of this many "
                                            "shipped rows (default: all)."),
    correction_weight: float = typer.Option(5.0, min=0.0, help="--from-corrections: loss weight of a correction."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Holds benchmarks/*.train.csv and sources/ (default: settings.data_dir)."),
    cx_dir: Path = typer.Option(HANDWRITTEN_DIR, "--cx-dir", help="Hand-written train_*.csv files."),
    split_layer: int = typer.Option(9, min=0, help="Layers below this are frozen and shared with the encoder."),
    epochs: int = typer.Option(3, min=1),
    max_length: int = typer.Option(128, min=8, max=512, help="Tokens per training text."),
    handwritten_weight: float = typer.Option(5.0, min=0.0, help="Loss weight of a hand-written row (public rows: 1)."),
    cap: float = typer.Option(1.0, min=0.01, max=1.0, help="Fraction of each public set to use (for quick runs)."),
    seed: int = typer.Option(0),
    cache_dir: Path | None = typer.Option(None, help="Cache the frozen layers' states here between runs."),
) -> None:
    """Fine-tune the top encoder layers with sentiment, reason and churn-intent heads; write a ~11 MB artefact.

    With --from-corrections, refit the sentiment head of the model in service on agents' corrections instead.
    """
    if from_corrections_:
        return from_corrections("sentiment", shipped_rows, correction_weight)
    if output is None:
        raise fail("give -o/--output (or --from-corrections)")
    settings = get_settings()
    try:
        frame = load_text_training_data(data_dir or settings.data_dir, cx_dir, seed=seed, cap=cap)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    counts = describe(frame)
    typer.echo(f"{len(frame)} texts: {counts}", err=True)
    start = time.perf_counter()
    trainer = TextModelTrainer(
        build_encoder(settings),
        load_taxonomy(None).ids,
        split_layer=split_layer,
        epochs=epochs,
        max_length=max_length,
        cache_dir=cache_dir,
        seed=seed,
        log=lambda message: typer.echo(message, err=True),
    )
    model = trainer.fit(
        frame["text"].tolist(), frame["sentiment"].tolist(), frame["reasons"].tolist(), frame["churn"].tolist(),
        valid=frame["valid"].to_numpy(), groups=frame["source"].tolist(),
        sample_weight=frame["handwritten"].map({True: handwritten_weight, False: 1.0}).to_numpy(),
    ).model_
    model.save(output, {"training_data": counts, "handwritten_weight": handwritten_weight,
                        "train_seconds": round(time.perf_counter() - start)})
    typer.echo(f"trained in {time.perf_counter() - start:.0f}s -> {output}", err=True)
