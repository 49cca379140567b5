"""``cxm setup`` and ``cxm demo``: prepare the offline models and show what cxm does."""

from __future__ import annotations

import collections
import time
from importlib import resources

import typer
from rich.console import Console
from rich.table import Table

from api.cli.app import app
from api.components import build_analyzer, build_encoder
from api.settings import get_settings
from api.tables import read_table

console = Console()


@app.command()
def setup() -> None:
    """Build the offline multilingual encoder into the model cache (idempotent)."""
    settings = get_settings()
    start = time.perf_counter()
    encoder = build_encoder(settings)
    vector = encoder.encode(["ready"])
    console.print(
        f"encoder ready: {settings.encoder} -> dim {vector.shape[1]}, "
        f"cache {settings.model_dir} ({time.perf_counter() - start:.1f}s)"
    )


@app.command()
def demo() -> None:
    """Analyse the bundled English/Swedish/Polish feedback set and print a summary."""
    settings = get_settings()
    frame = read_table(resources.files("api") / "resources" / "demo_feedback.csv")
    analyzer = build_analyzer(settings)
    start = time.perf_counter()
    results = analyzer.analyze(frame["text"].tolist())
    elapsed = time.perf_counter() - start

    table = Table(title=f"{len(frame)} feedback texts analysed in {elapsed:.1f}s")
    table.add_column("language")
    table.add_column("texts", justify="right")
    counts = collections.Counter(r.language for r in results)
    for lang, n in counts.most_common():
        table.add_row(str(lang), str(n))
    console.print(table)
