"""``cxm score``: score feedback files of any size, resumably, locally or on a Ray cluster."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from api.batch.job import JobConfig, Summary, run_local
from api.batch.progress import Progress
from api.batch.readers import InputError, discover
from api.cli.app import app
from api.settings import get_settings


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@app.command()
def score(
    input: Path = typer.Argument(..., help="CSV, JSONL or Parquet file, or a directory of them."),
    output: Path = typer.Argument(..., help="Output file: .jsonl or .parquet."),
    text_column: str = typer.Option("text", help="Name of the column holding the text."),
    errors: Path | None = typer.Option(None, help="Bad rows (JSONL) [default: OUTPUT stem + .errors.jsonl]."),
    chunk_size: int = typer.Option(1000, min=1, max=1_000_000, help="Rows per chunk (the unit of resume)."),
    max_chars: int = typer.Option(10_000, min=1, help="Longer texts are bad rows."),
    engine: Engine = typer.Option(Engine.local, help="local, or ray (needs cxm[ray])."),
    address: str | None = typer.Option(None, help="Ray cluster address (default: start a local Ray)."),
    workers: int | None = typer.Option(None, min=1, help="Ray: scoring actors [default: the cluster's CPUs]."),
    to_db: bool = typer.Option(False, "--to-db", help="Also store the feedback and its analysis in the database."),
    restart: bool = typer.Option(False, help="Discard an unfinished job's chunks and start over."),
    max_chunks: int | None = typer.Option(
        None, min=1, help="Stop after this many new chunks (resume later with the same command)."
    ),
) -> None:
    """Score every row; rerun the same command after an interruption to continue where it stopped.

    Exit code 0: every row scored; 1: some rows failed (see the errors file); 2: unusable input;
    3: stopped early (--max-chunks), resumable.
    """
    settings = get_settings()
    config = JobConfig(input, output, text_column, chunk_size, max_chars, errors)
    try:
        total = sum(s.size for s in discover(input, exclude=(config.work_dir, output, config.errors_path)))
        _ = config.format
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if engine is Engine.ray and to_db:
        typer.echo("error: --to-db runs with the local engine only", err=True)
        raise typer.Exit(2)
    try:
        if engine is Engine.ray:
            from api.batch.ray_engine import RayUnavailable, run_ray

            try:
                with Progress(total) as progress:
                    summary = run_ray(config, settings, address=address, workers=workers, restart=restart,
                                      max_chunks=max_chunks, progress=progress)
            except RayUnavailable as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from exc
        else:
            from api.components import build_analyzer

            analyzer = build_analyzer(settings)
            sink = None
            if to_db:
                from api.batch.database import DatabaseSink

                sink = DatabaseSink.from_settings(settings, analyzer, text_column)
            with Progress(total) as progress:
                summary = run_local(config, analyzer, restart=restart, max_chunks=max_chunks,
                                    progress=progress, sink=sink,
                                    work_extra={"to_db": settings.database_url} if to_db else None)
            if sink is not None:
                typer.echo(f"database: {sink.stored} stored, {sink.duplicates} already there, "
                           f"{sink.conflicts} not stored (id already stored with other content)", err=True)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _report(summary)


def _report(summary: Summary) -> None:
    typer.echo(json.dumps(summary.to_dict()))
    where = f" -> {summary.output} (bad rows: {summary.errors})" if summary.complete else ""
    typer.echo(
        f"read {summary.read} rows, scored {summary.scored}, failed {summary.failed}"
        f" ({summary.resumed_chunks} of {summary.chunks} chunks resumed){where}",
        err=True,
    )
    if not summary.complete:
        typer.echo("stopped early; rerun the same command to continue", err=True)
        raise typer.Exit(3)
    if summary.failed:
        raise typer.Exit(1)
