"""The alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from api.db.engine import alembic_config, make_engine, migrate
from api.db.models import Base


def test_migrations_build_the_schema_the_models_describe(new_database):
    engine = make_engine(new_database())
    try:
        migrate(engine)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_the_migrations_have_one_head(new_database):
    """Branches written side by side are merged, so `upgrade head` reaches every table."""
    engine = make_engine(new_database())
    try:
        assert len(ScriptDirectory.from_config(alembic_config(engine)).get_heads()) == 1
    finally:
        engine.dispose()


def test_upgrading_fills_the_aggregated_columns_of_stored_analyses(new_database):
    """A database analysed before 0008/0010 gets each analysis' top topic, sentiment and language as columns."""
    engine = make_engine(new_database())
    try:
        command.upgrade(alembic_config(engine), "0005")
        analysis = {"language": "sv", "sentiment": {"label": "negative", "score": -0.8},
                    "topics": [{"id": 4, "label": "billing", "probability": 0.7}]}
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO customers (id, attributes, created_at, needs_scoring, scoring_marks) "
                                    "VALUES ('c1', '{}', :at, false, 0)"), {"at": datetime.now(timezone.utc)})
            for external_id, status, stored in (("analysed", "analysed", json.dumps(analysis)),
                                                ("pending", "pending", None)):
                connection.execute(text(
                    "INSERT INTO feedback (external_id, customer_id, kind, channel, created_at, segments, redactions, "
                    "status, attempts, analysis, received_at) VALUES (:e, 'c1', 'survey', 'survey', :at, '{}', '{}', "
                    ":status, 1, :analysis, :at)"),
                    {"e": external_id, "at": datetime.now(timezone.utc), "status": status, "analysis": stored})
        migrate(engine)
        with engine.connect() as connection:
            found = {r[0]: tuple(r[1:]) for r in connection.execute(text(
                "SELECT external_id, topic_id, topic_label, sentiment_score, sentiment_label, language FROM feedback"))}
        assert found == {"analysed": (4, "billing", -0.8, "negative", "sv"), "pending": (None,) * 5}
    finally:
        engine.dispose()
