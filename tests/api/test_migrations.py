"""The alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

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
