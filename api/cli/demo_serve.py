"""``cxm demo --serve``: the demo data in a fresh SQLite database, one key per role, and the web app
serving it, so a newcomer sees a populated triage desk and dashboard."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pandas as pd
import typer

from api.settings import Settings
from churn.simulate import simulate
from nlp.analyzer import FeedbackAnalyzer

DEMO_END = datetime(2026, 9, 16)
"""The simulated history is shifted to end here, next to the bundled texts' dates (September 2026)."""


def _moment(value) -> str | None:
    return None if value is None or value != value else pd.Timestamp(value).isoformat(timespec="seconds") + "Z"


def _number(value) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def demo_items(frame: pd.DataFrame, n_customers: int) -> list[dict]:
    """The bundled texts and a simulated CX history (segments, NPS/CSAT/CES, tickets) as feedback items."""
    items = [{"kind": "survey" if row.channel == "survey" else "ticket" if row.channel == "ticket" else "social",
              "external_id": f"demo-{row.id}", "customer_id": row.customer_id,
              "channel": "email" if row.channel == "ticket" else row.channel,
              "timestamp": f"{row.timestamp}T12:00:00Z", "text": row.text,
              **({"nps": int(float(row.nps))} if row.channel == "survey" and str(row.nps or "").strip() not in ("", "nan")
                 else {})}
             for row in frame.itertuples(index=False)]
    sim = simulate(n_customers, seed=7)
    shift = DEMO_END - sim.end
    tables = sim.tables
    profiles = {c.customer_id: {"region": c.region, "product": c.product, "plan": c.plan, "segment": c.segment}
                for c in tables.customers.itertuples(index=False)}
    for i, row in enumerate(tables.feedback.itertuples(index=False)):
        item = {"external_id": f"sim-f{i}", "customer_id": row.customer_id, "timestamp": _moment(row.timestamp + shift),
                "segments": profiles[row.customer_id], "text": row.text if isinstance(row.text, str) else None}
        if row.survey_type is not None:
            item.update(kind="survey", channel="survey", survey_type=row.survey_type, nps=_number(row.nps),
                        ces=_number(row.ces), csat=_number(row.csat), reasons=list(row.reasons))
        elif item["text"]:
            item.update(kind="social", channel=row.channel)
        else:
            continue
        items.append(item)
    for i, row in enumerate(tables.tickets.itertuples(index=False)):
        items.append({"kind": "ticket", "external_id": f"sim-t{i}", "customer_id": row.customer_id, "channel": "email",
                      "timestamp": _moment(row.opened_at + shift), "text": "Support ticket about my service.",
                      "first_response_at": _moment(row.first_response_at + shift),
                      "resolved_at": _moment(row.resolved_at + shift), "segments": profiles[row.customer_id]})
    return items


def with_topics(analyzer: FeedbackAnalyzer, texts: list[str], display_language: str) -> FeedbackAnalyzer:
    """The analyzer plus a small topic model fitted on the demo's own texts (k-means: the set is small),
    labelled in ``display_language`` as ``cxm topics fit`` does."""
    from nlp.topics.config import TopicModelConfig
    from nlp.topics.model import TopicModel
    from nlp.topics.tagger import TopicTagger

    config = TopicModelConfig(reduction="pca", clustering="kmeans", n_topics=8, min_topic_size=3,
                              display_language=display_language)
    model = TopicModel(config).fit(texts, analyzer.encoder.encode(texts), analyzer.encoder,
                                   languages=analyzer.language_detector.detect(texts))
    return FeedbackAnalyzer(analyzer.encoder, analyzer.language_detector, sentiment=analyzer.sentiment,
                            sentence_splitter=analyzer.sentence_splitter, reasons=analyzer.reasons,
                            topics=TopicTagger(model), signals=analyzer.signals)


def serve_demo(settings: Settings, analyzer: FeedbackAnalyzer, frame: pd.DataFrame, n_customers: int,
               directory: Path, host: str, port: int) -> None:
    """Load the demo into ``directory/demo.db`` (made afresh), print a key per role and serve the app."""
    import uvicorn

    from api.app import create_app
    from api.auth import create_api_key
    from api.db.engine import make_engine, make_sessionmaker, migrate
    from api.db.models import ROLES
    from api.pii import PiiRedactor
    from api.runtime import Models
    from api.services.analysis import model_versions
    from api.services.ingestion import ingest
    from api.services.risk import flag
    from churn.model import ChurnModel

    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "demo.db"
    for stale in directory.glob("demo.db*"):
        stale.unlink()
    settings = settings.model_copy(update={"database_url": f"sqlite:///{database.resolve()}", "cases_per_day": 0})
    items = demo_items(frame, n_customers)
    typer.echo(f"\nloading the demo into {database}: {len(items)} feedback rows, fitting topics and analysing them…",
               err=True)
    analyzer = with_topics(analyzer, sorted({i["text"] for i in items if i.get("text")}), settings.topic_display_language)
    engine = make_engine(settings.database_url, settings)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    result = ingest(sessions, items, PiiRedactor(settings.pii_redact), analyzer, model_versions(settings, analyzer))
    churn_model = ChurnModel.load()
    with sessions() as session:
        outcome = flag(session, churn_model, settings.risk_threshold, actor="cxm demo", cases_per_day=0)
        keys = {role: create_api_key(session, f"demo-{role}", role)[1] for role in ROLES}
        session.commit()
    engine.dispose()
    typer.echo(f"stored {result.stored} rows ({result.rejected} rejected), scored {outcome.scored} customers, "
               f"opened {outcome.cases_opened} cases", err=True)
    url = f"http://{host}:{port}/app"
    typer.echo(f"\nOpen {url} and sign in with one of these keys (made for this demo database only):")
    for role in ("agent", "viewer", "admin"):
        typer.echo(f"  {role:<7} {keys[role]}")
    typer.echo("Ctrl+C stops the server.")
    app = create_app(settings, models=Models(analyzer=analyzer, churn_model=churn_model))
    uvicorn.run(app, host=host, port=port, log_level="warning")
