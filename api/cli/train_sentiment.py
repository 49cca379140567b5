"""``cxm train sentiment``: reproduce the shipped sentiment adapters from the ``.train.csv`` splits."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from api.cli.app import train_app
from api.components import build_encoder
from api.settings import get_settings
from nlp.sentiment_data import DEFAULT_CAPS, load_training_data
from nlp.sentiment_training import SentimentAdapterTrainer


@train_app.command("sentiment")
def train_sentiment(
    output: Path = typer.Option(..., "-o", "--output", help="Directory for config.json + adapter.safetensors."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Holds benchmarks/*.train.csv (default: settings.data_dir)."),
    split_layer: int = typer.Option(10, min=0, help="Layers below this are frozen and shared with the encoder."),
    epochs: int = typer.Option(1, min=1),
    max_length: int = typer.Option(96, min=8, max=512, help="Tokens per training text."),
    cap: float = typer.Option(1.0, min=0.01, help="Scale the per-set row caps (for quick runs)."),
    seed: int = typer.Option(0),
    cache_dir: Path | None = typer.Option(None, help="Cache the frozen layers' states here between runs."),
) -> None:
    """Fine-tune LoRA adapters on the top encoder layers plus a linear head; write a few-MB artefact."""
    settings = get_settings()
    data_dir = data_dir or settings.data_dir
    caps = {name: (None if c is None else max(1, int(c * cap))) for name, c in DEFAULT_CAPS.items()}
    try:
        frame = load_training_data(data_dir, caps, seed=seed)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{len(frame)} training texts: {frame['dataset'].value_counts().to_dict()}", err=True)
    start = time.perf_counter()
    trainer = SentimentAdapterTrainer(
        build_encoder(settings),
        split_layer=split_layer,
        epochs=epochs,
        max_length=max_length,
        cache_dir=cache_dir,
        seed=seed,
        log=lambda message: typer.echo(message, err=True),
    )
    trainer.fit(frame["text"].tolist(), frame["label"].tolist(), groups=frame["dataset"].tolist())
    trainer.save(output, extra={"training_data": {k: int(v) for k, v in frame["dataset"].value_counts().items()},
                                "train_seconds": round(time.perf_counter() - start)})
    typer.echo(f"trained in {time.perf_counter() - start:.0f}s -> {output}", err=True)
