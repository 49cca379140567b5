"""``cxm setup`` and ``cxm demo``: prepare the offline models and show what cxm does."""

from __future__ import annotations

import collections
import time
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from api.cli.app import app
from api.components import build_analyzer, build_encoder, build_sentiment
from api.settings import get_settings
from api.tables import read_table
from churn.model import ChurnModel
from churn.scoring import features_for, score_customers
from churn.simulate import simulate
from churn.text_features import annotate_tables
from nlp.results import SENTIMENT_LABELS, Analysis

console = Console()
DEMO_COMPETITORS = ("Telia", "Telenor", "Orange", "Tele2", "Play")


@app.command()
def setup() -> None:
    """Build the offline multilingual encoder (and its ONNX export) into the model cache (idempotent)."""
    settings = get_settings()
    start = time.perf_counter()
    encoder = build_encoder(settings)
    vector = encoder.encode(["ready"])
    console.print(
        f"encoder ready: {settings.encoder} -> dim {vector.shape[1]}, "
        f"cache {settings.model_dir} ({time.perf_counter() - start:.1f}s)"
    )
    if settings.backend == "onnx":
        from nlp.onnx_sentiment import ensure_onnx_model

        start = time.perf_counter()
        path = ensure_onnx_model(build_sentiment(settings, encoder), settings.model_dir, settings.quantize)
        console.print(f"ONNX Runtime graph ready: {path} ({time.perf_counter() - start:.1f}s)")


@app.command()
def demo(
    customers: int = typer.Option(120, min=20, help="Simulated customers for the at-risk part."),
    serve: bool = typer.Option(False, "--serve", help="Then load the demo into a fresh SQLite database, print a key "
                               "per role and serve the web app on it (until Ctrl+C)."),
    directory: Path = typer.Option(Path("cxm-demo"), "--dir", help="Where --serve keeps its database."),
    host: str = typer.Option("127.0.0.1", help="Interface --serve binds."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port --serve listens on."),
) -> None:
    """Analyse the bundled en/sv/pl feedback, then flag at-risk customers in a simulated CX history;
    with --serve, also open the populated web app."""
    settings = get_settings()
    if not settings.competitors:  # the bundled texts name these telcos
        settings = settings.model_copy(update={"competitors": list(DEMO_COMPETITORS)})
    frame = read_table(resources.files("api") / "resources" / "demo_feedback.csv")
    analyzer = build_analyzer(settings)
    start = time.perf_counter()
    results = analyzer.analyze(frame["text"].tolist())
    console.print(_sentiment_table(results, time.perf_counter() - start))
    console.print(_reasons_table(results))
    console.print(_topics_table(analyzer, frame["text"].tolist(), results))
    _print_signals_and_mixed(frame, results)
    _print_at_risk(analyzer, customers)
    if serve:
        from api.cli.demo_serve import serve_demo

        serve_demo(settings, analyzer, frame, customers, directory, host, port)


def _sentiment_table(results: list[Analysis], elapsed: float) -> Table:
    table = Table(title=f"Sentiment by language ({len(results)} texts, {elapsed:.1f}s)")
    for column in ("language", "texts", *SENTIMENT_LABELS, "mean score"):
        table.add_column(column, justify="left" if column == "language" else "right")
    by_lang: dict[str, list[Analysis]] = collections.defaultdict(list)
    for r in results:
        by_lang[str(r.language)].append(r)
    for lang, rows in sorted(by_lang.items(), key=lambda kv: -len(kv[1])):
        labels = collections.Counter(r.sentiment.label for r in rows if r.sentiment)
        scores = [r.sentiment.score for r in rows if r.sentiment]
        mean = f"{sum(scores) / len(scores):+.2f}" if scores else "-"
        table.add_row(lang, str(len(rows)), *(str(labels[label]) for label in SENTIMENT_LABELS), mean)
    return table


def _reasons_table(results: list[Analysis]) -> Table:
    """What customers talk about: the top NPS+ reason of each text, with its mean sentiment."""
    table = Table(title="What customers talk about (top NPS+ reason per text)")
    for column in ("reason", "texts", "negative", "mean score"):
        table.add_column(column, justify="left" if column == "reason" else "right")
    groups: dict[str, list[Analysis]] = collections.defaultdict(list)
    for r in results:
        if r.reasons:
            groups[r.reasons[0].id].append(r)
    for reason, rows in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        scores = [r.sentiment.score for r in rows if r.sentiment]
        negative = sum(r.sentiment is not None and r.sentiment.label == "negative" for r in rows)
        table.add_row(reason, str(len(rows)), str(negative), f"{sum(scores) / max(1, len(scores)):+.2f}")
    return table


def _topics_table(analyzer, texts: list[str], results: list[Analysis]) -> Table:
    """Topics found in the bundled texts themselves (BERTopic; k-means, as the set is small)."""
    from nlp.topics.config import TopicModelConfig
    from nlp.topics.model import TopicModel

    start = time.perf_counter()
    config = TopicModelConfig(reduction="pca", clustering="kmeans", n_topics=6, min_topic_size=3)
    model = TopicModel(config).fit(texts, analyzer.encoder.encode(texts), analyzer.encoder)
    table = Table(title=f"Topics in the same texts (BERTopic over the shared encoder, fitted in "
                        f"{time.perf_counter() - start:.0f}s)")
    for column in ("topic", "texts", "languages", "mean score"):
        table.add_column(column, justify="right" if column in ("texts", "mean score") else "left")
    members: dict[int, list[Analysis]] = collections.defaultdict(list)
    for topic_id, result in zip(model.document_topics_, results):
        members[topic_id].append(result)
    for topic in sorted(model.topics_, key=lambda t: -len(members[t.id])):
        rows = members[topic.id]
        scores = [r.sentiment.score for r in rows if r.sentiment]
        languages = ", ".join(sorted({str(r.language) for r in rows}))
        table.add_row(topic.label, str(len(rows)), languages, f"{sum(scores) / max(1, len(scores)):+.2f}")
    return table


def _print_signals_and_mixed(frame, results: list[Analysis]) -> None:
    intent = [i for i, r in enumerate(results) if r.signals and r.signals.churn_intent]
    competitors = collections.Counter(c for r in results if r.signals for c in r.signals.competitors)
    console.print(
        f"\n[bold]Churn intent[/] in {len(intent)} texts; competitors named (CXM_COMPETITORS): "
        + (", ".join(f"{name} ({n})" for name, n in competitors.most_common()) or "none")
    )
    mixed = next((i for i, r in enumerate(results) if r.mixed), None)
    if mixed is not None:
        console.print(f"\n[bold]A mixed text[/], sentence by sentence: {frame['text'][mixed]!r}")
        for s in results[mixed].sentences:
            console.print(f"  {s.sentiment.label:>8} {s.sentiment.score:+.2f}  {s.text}")


def _print_at_risk(analyzer, n_customers: int) -> None:
    """Simulated CX history -> text analysis -> shipped churn model -> the triage queue's top."""
    simulation = simulate(n_customers, seed=7)
    start = time.perf_counter()
    tables = annotate_tables(simulation.tables, analyzer)
    model = ChurnModel.load()
    scores = score_customers(model, features_for(model, tables, simulation.end))
    scores = scores.sort_values("probability", ascending=False)
    table = Table(
        title=f"At-risk customers (simulated history of {n_customers} customers, "
        f"{len(tables.feedback)} feedback events, {time.perf_counter() - start:.0f}s)"
    )
    for column in ("customer", "risk", "tier", "why"):
        table.add_column(column, justify="right" if column == "risk" else "left")
    for row in scores.head(5).itertuples():
        table.add_row(row.customer_id, f"{row.probability:.0%}", row.tier, "; ".join(row.reasons[:3]) or "-")
    console.print(table)
    tiers = collections.Counter(scores["tier"])
    console.print(f"tiers: {dict(tiers)} (threshold {model.threshold_:.2f}, chosen at training)")
