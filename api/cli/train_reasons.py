"""``cxm train reasons``: fit the few-shot reason head from labelled examples (text + reasons)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import typer

from api.cli.app import fail, train_app
from api.cli.train_sentiment import from_corrections
from api.components import build_encoder
from api.settings import get_settings
from api.tables import TableError, read_table
from nlp.reason_tagger import FewShotReasonHead
from nlp.reason_taxonomy import TaxonomyError, load_taxonomy

SEPARATORS = re.compile(r"[;|,]")


def parse_reason_cell(cell: str) -> list[str]:
    """``"billing; price"`` -> ``["billing", "price"]`` (``;``, ``|`` or ``,`` separate ids)."""
    return list(dict.fromkeys(p.strip() for p in SEPARATORS.split(cell or "") if p.strip()))


@train_app.command("reasons")
def train_reasons(
    input: Path | None = typer.Argument(None, help="CSV/JSONL/Parquet with a text column and a reasons column."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Directory for reason_head.safetensors + .json."),
    text_column: str = typer.Option("text"),
    reasons_column: str = typer.Option("reasons", help="Reason ids per row, separated by ';', '|' or ','."),
    c: float = typer.Option(1.0, "--c", min=1e-4, help="Inverse regularisation strength of the heads."),
    from_corrections_: bool = typer.Option(
        False, "--from-corrections", help="Instead: refit the served text model's reason head on the service's "
        "corrections plus data/cx; activate it if it beats the served one on held-out corrections."),
    shipped_rows: int | None = typer.Option(None, min=1, help="--from-corrections: a fixed sample of this many "
                                            "shipped rows (default: all)."),
    correction_weight: float = typer.Option(5.0, min=0.0, help="--from-corrections: loss weight of a correction."),
) -> None:
    """Train logistic heads on the encoder's embeddings (SetFit-style); point CXM_REASON_MODEL at OUTPUT.

    With --from-corrections, refit the reason head of the text model in service on agents' corrections instead.
    """
    if from_corrections_:
        return from_corrections("reasons", shipped_rows, correction_weight)
    if input is None or output is None:
        raise fail("give INPUT and -o/--output (or --from-corrections)")
    settings = get_settings()
    try:
        frame = read_table(input, text_column)
        if reasons_column not in frame.columns:
            raise TableError(f"{input}: no {reasons_column!r} column (columns: {', '.join(map(str, frame.columns))})")
        labels = [parse_reason_cell(str(v)) for v in frame[reasons_column].tolist()]
        keep = [i for i, (t, y) in enumerate(zip(frame[text_column], labels)) if isinstance(t, str) and t.strip() and y]
        if len(keep) < 4:
            raise TableError(f"{input}: only {len(keep)} rows have both a text and a reason; need at least 4")
        taxonomy = load_taxonomy(settings.reason_taxonomy)
        taxonomy.check_ids(r for i in keep for r in labels[i])
    except (TableError, TaxonomyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    texts = [frame[text_column].iloc[i].strip() for i in keep]
    targets = [labels[i] for i in keep]
    multi_label = any(len(y) > 1 for y in targets)
    start = time.perf_counter()
    embeddings = build_encoder(settings).encode(texts)
    try:
        head = FewShotReasonHead(C=c).fit(embeddings, targets if multi_label else [y[0] for y in targets])
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    head.save(output, metadata={"encoder": settings.encoder, "rows": len(texts), "source": str(input)})
    typer.echo(
        f"trained on {len(texts)} texts, {len(head.classes_)} reasons, threshold {head.threshold_:.2f}, "
        f"in {time.perf_counter() - start:.0f}s -> {output}",
        err=True,
    )
