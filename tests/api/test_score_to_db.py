"""`cxm score --to-db` stores batch-scored feedback through the API's ingestion, on both databases."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from api.batch.database import DatabaseSink
from api.batch.job import JobConfig, run_local
from api.cli import app
from api.db.engine import make_engine, make_sessionmaker, migrate
from api.db.models import Feedback
from api.pii import PiiRedactor
from api.settings import get_settings
from nlp.analyzer import FeedbackAnalyzer
from nlp.results import Analysis

runner = CliRunner()


def test_score_to_db_is_idempotent_and_dashboards_see_the_analysis(tmp_path, database_url, monkeypatch):
    tag = tmp_path.name[-12:]
    records = [
        {"id": f"{tag}-{i}", "customer_id": f"{tag}-c{i % 3}", "channel": "survey", "nps": i,
         "timestamp": "2026-10-01T10:00:00Z", "text": text}
        for i, text in enumerate(["Great support, thank you!", "Fakturan var fel igen.",
                                  "Aplikacja ciągle się zawiesza.", "Mail me at jan@example.com, the router died."])
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    monkeypatch.setenv("CXM_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        args = ["score", str(source), str(tmp_path / "out.jsonl"), "--to-db"]
        first = runner.invoke(app, args)
        again = runner.invoke(app, [*args, "--restart"])  # a rerun of the whole job
        records[0]["nps"] = 10  # the file changed under an id the database already holds
        source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        changed = runner.invoke(app, [*args, "--restart"])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    assert "database: 4 stored, 0 already there, 0 not stored" in first.output
    assert again.exit_code == 0 and "database: 0 stored, 4 already there, 0 not stored" in again.output
    assert changed.exit_code == 0 and "database: 0 stored, 3 already there, 1 not stored" in changed.output

    with make_sessionmaker(make_engine(database_url))() as session:
        stored = session.scalars(select(Feedback).where(Feedback.external_id.like(f"{tag}-%"))).all()
        assert session.scalar(select(func.count()).where(Feedback.external_id.like(f"{tag}-%"))) == 4
    assert {f.status for f in stored} == {"analysed"}
    assert all(f.analysis["sentiment"]["label"] in ("negative", "neutral", "positive") for f in stored)
    redacted = next(f for f in stored if f.external_id.endswith("-3"))
    assert "jan@example.com" not in redacted.text


class CountingAnalyzer(FeedbackAnalyzer):
    """The real analyzer, recording every text it is asked to analyse."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[str | None] = []

    def analyze(self, texts):
        self.seen.extend(texts)
        return super().analyze(texts)


def test_score_to_db_analyses_each_text_once_as_stored(tmp_path, database_url, encoder, language_detector):
    tag = tmp_path.name[-12:]
    texts = ["Great support, thank you!", "Mail me at jan@example.com, the router died.",
             "Fakturan var fel igen."]
    rows = [{"id": f"{tag}-{i}", "customer_id": f"{tag}-c", "channel": "survey",
             "timestamp": "2026-10-01T10:00:00Z", "text": t} for i, t in enumerate(texts)]
    rows.append({**rows[0], "nps": 3})  # a repeat of an id with other content: a conflict, never stored
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    analyzer = CountingAnalyzer(encoder, language_detector)
    engine = make_engine(database_url)
    migrate(engine)
    sink = DatabaseSink(make_sessionmaker(engine), PiiRedactor(["email"]), analyzer, {}, 5, "text")

    summary = run_local(JobConfig(source, tmp_path / "out.jsonl"), analyzer, sink=sink)

    redacted = "Mail me at [EMAIL], the router died."
    assert summary.complete and summary.scored == 4
    assert analyzer.seen == [texts[0], redacted, texts[2], texts[0]]  # one call per row, the stored text
    assert (sink.stored, sink.duplicates, sink.conflicts) == (3, 0, 1)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["text"] for r in out] == [texts[0], redacted, texts[2], texts[0]]
    with make_sessionmaker(engine)() as session:
        query = select(Feedback).where(Feedback.external_id.like(f"{tag}-%"))
        stored = {f.external_id: f for f in session.scalars(query)}
    assert stored[f"{tag}-1"].text == redacted and stored[f"{tag}-1"].redactions == {"email": 1}
    by_text = {r["text"]: r for r in out}
    for f in stored.values():
        assert f.status == "analysed" and f.analysis == Analysis.from_dict(f.analysis).to_dict()
        assert f.analysis["language"] == by_text[f.text]["language"]
