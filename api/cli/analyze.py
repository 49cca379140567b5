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
    """Analyse every row; other columns pass through unchanged (``input_<name>`` where the
    analysis writes a field of that name, e.g. an input column called ``language``)."""
    try:
        frame = read_table(input, text_column)
    except TableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    analyzer = build_analyzer(get_settings())
    texts = [None if isinstance(t, float) and t != t else t for t in frame[text_column].tolist()]
    results = analyzer.analyze(texts)
    rows = frame.to_dict(orient="records")
    n = write_jsonl((_merge(row, res.to_dict()) for row, res in zip(rows, results)), output)
    failed = sum(r.error is not None for r in results)
    typer.echo(f"analysed {n} rows ({failed} without a result) -> {output}", err=True)


def _merge(row: dict, analysis: dict) -> dict:
    """The input row plus the analysis; an input column the analysis would overwrite is kept renamed."""
    return {**{(f"input_{k}" if k in analysis else k): v for k, v in row.items()}, **analysis}
