"""`cxm score --to-db` stores batch-scored feedback through the API's ingestion, on both databases."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from api.cli import app
from api.db.engine import make_engine, make_sessionmaker
from api.db.models import Feedback
from api.settings import get_settings

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
