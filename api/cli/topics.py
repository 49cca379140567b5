"""``cxm topics``: fit a topic model on a feedback file, and report topic trends per period and segment."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import pandas as pd
import typer

from api.cli.app import app, fail
from api.settings import get_settings
from api.tables import TableError, csv_safe, read_table

topics_app = typer.Typer(help="Discover topics in feedback and follow them over time.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


class Reduction(str, Enum):
    umap = "umap"
    pca = "pca"


class OutlierStrategy(str, Enum):
    none = "none"
    embeddings = "embeddings"
    ctfidf = "c-tf-idf"


class Period(str, Enum):
    day = "day"
    week = "week"
    month = "month"


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _texts(input: Path, text_column: str) -> tuple[pd.DataFrame, list[str]]:
    try:
        frame = read_table(input, text_column)
    except TableError as exc:
        raise fail(str(exc)) from exc
    texts = [t.strip() if isinstance(t, str) else "" for t in frame[text_column].tolist()]
    return frame, texts


@topics_app.command("fit")
def fit(
    input: Path = typer.Argument(..., help="CSV, JSONL or Parquet with a text column."),
    text_column: str = typer.Option("text", help="Name of the column holding the text."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Model directory [default: the configured topic model]."),
    reduction: Reduction = typer.Option(Reduction.umap, help="UMAP for real corpora; PCA is fast for small ones."),
    min_topic_size: int = typer.Option(10, min=2, help="Smallest cluster HDBSCAN calls a topic."),
    n_topics: int | None = typer.Option(None, min=2, help="Merge down to this many topics."),
    outliers: OutlierStrategy = typer.Option(OutlierStrategy.embeddings, help="How texts without a topic are reassigned."),
    outlier_threshold: float = typer.Option(0.0, help="Similarity an outlier needs to be reassigned."),
) -> None:
    """Fit topics; an existing model at the output is the previous fit, so topic ids stay stable."""
    from api.components import analyzer_config, build_encoder
    from nlp.pipeline import build_language_detector
    from nlp.topics.config import TopicModelConfig
    from nlp.topics.model import TopicModel

    settings = get_settings()
    target = output or settings.topic_model_dir
    _, texts = _texts(input, text_column)
    texts = [t for t in texts if t]
    try:
        config = TopicModelConfig(
            languages=tuple(settings.languages),
            display_language=settings.topic_display_language,
            reduction=reduction.value,
            min_topic_size=min_topic_size,
            n_topics=n_topics,
            outlier_strategy=outliers.value,
            outlier_threshold=outlier_threshold,
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    previous = TopicModel.load(target, load_bertopic=False) if TopicModel.exists(target) else None
    encoder = build_encoder(settings)
    embeddings = encoder.encode(texts)
    languages = build_language_detector(analyzer_config(settings)).detect(texts)
    try:
        model = TopicModel(config).fit(texts, embeddings, encoder, previous=previous, languages=languages)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    model.save(target)
    kept = sum(t.id in {p.id for p in previous.topics_} for t in model.topics_) if previous else 0
    for topic in model.topics_:
        typer.echo(f"{topic.id:>4}  {topic.size:>6}  [{topic.label_language}] {topic.label}")
    typer.echo(
        f"{len(model.topics_)} topics from {len(texts)} texts in {model.fit_seconds_:.1f} s; outliers "
        f"{model.outlier_share_before_:.1%} -> {model.outlier_share_:.1%}"
        + (f"; {len(model.merged_pairs_)} cross-language duplicates merged" if model.merged_pairs_ else "")
        + (f"; {kept} ids kept from the previous fit" if previous else "")
        + f" -> {target}",
        err=True,
    )


@topics_app.command("trends")
def trends(
    input: Path = typer.Argument(..., help="Feedback with a timestamp column (and text, or topic_id/topic_label)."),
    period: Period = typer.Option(Period.week, help="Calendar period (UTC; weeks start on Monday)."),
    by: list[str] = typer.Option([], "--by", help="Segment column(s), e.g. channel; repeat for several."),
    output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write here instead of stdout."),
    text_column: str = typer.Option("text", help="Text column, used when there is no topic_id column."),
    timestamp_column: str = typer.Option("timestamp", help="Column holding the date of each text."),
    model: Path | None = typer.Option(None, help="Topic model directory [default: the configured one]."),
) -> None:
    """Counts, share and mean sentiment (from a sentiment_score column, if any) per topic and period."""
    from nlp.topics.trends import topic_trends

    try:
        frame = read_table(input, timestamp_column)
    except TableError as exc:
        raise fail(str(exc)) from exc
    if "topic_id" not in frame.columns and text_column not in frame.columns:
        raise fail(f"{input}: needs a {text_column!r} column (or topic_id and topic_label columns)")
    frame = frame.rename(columns={timestamp_column: "timestamp"})
    if "topic_id" not in frame.columns:
        frame = _assign_topics(frame, text_column, model or get_settings().topic_model_dir)
    try:
        table = topic_trends(frame, period.value, by or None)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    _write(table, output_format, output)


def _assign_topics(frame: pd.DataFrame, text_column: str, model_dir: Path) -> pd.DataFrame:
    from api.components import build_encoder
    from nlp.topics.model import TopicModel

    if not TopicModel.exists(model_dir):
        raise fail(f"no topic model at {model_dir}; run `cxm topics fit` first or pass --model")
    model = TopicModel.load(model_dir, load_bertopic=False)
    texts = [t.strip() if isinstance(t, str) else "" for t in frame[text_column].tolist()]
    frame = frame[[bool(t) for t in texts]].copy()
    texts = [t for t in texts if t]
    ids = model.predict(build_encoder(get_settings()).encode(texts))
    frame["topic_id"] = ids
    frame["topic_label"] = [model.topic(i).label for i in ids]
    return frame


def _write(table: pd.DataFrame, output_format: OutputFormat, output: Path | None) -> None:
    table = table.assign(period=table["period"].dt.strftime("%Y-%m-%d"))
    if output_format is OutputFormat.csv:
        text = csv_safe(table).to_csv(index=False)
    elif output_format is OutputFormat.json:
        records = json.loads(table.to_json(orient="records", force_ascii=False))
        text = json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    else:
        text = table.to_string(index=False, float_format=lambda x: f"{x:.3f}") + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"{len(table)} rows -> {output}", err=True)
