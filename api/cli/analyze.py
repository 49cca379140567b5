"""``cxm analyze``: per-text language, sentiment, reasons, topics and signals as JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.app import app
from api.components import build_analyzer
from api.settings import get_settings
from api.tables import TableError, read_table, write_jsonl


@app.command()
def analyze(
    input: Path = typer.Argument(..., help="CSV, JSONL or Parquet with a text column."),
    output: Path = typer.Option(..., "-o", "--output", help="JSONL file to write."),
    text_column: str = typer.Option("text", help="Name of the column holding the text."),
) -> None:
    """Analyse every row; other columns pass through unchanged."""
    try:
        frame = read_table(input, text_column)
    except TableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    analyzer = build_analyzer(get_settings())
    texts = [t if isinstance(t, str) else None for t in frame[text_column].tolist()]
    results = analyzer.analyze(texts)
    rows = frame.to_dict(orient="records")
    n = write_jsonl(({**row, **res.to_dict()} for row, res in zip(rows, results)), output)
    failed = sum(r.error is not None for r in results)
    typer.echo(f"analysed {n} rows ({failed} without a result) -> {output}", err=True)
