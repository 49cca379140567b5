"""`cxm db upgrade`, `cxm keys create|list|revoke` and `cxm flag` against both databases."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from api.auth import authenticate
from api.cli import app
from api.db.engine import make_engine, make_sessionmaker
from api.errors import ApiError
from api.settings import get_settings

runner = CliRunner()


@pytest.fixture
def cli_env(database_url, monkeypatch):
    monkeypatch.setenv("CXM_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield make_sessionmaker(make_engine(database_url))
    get_settings.cache_clear()


def test_upgrade_create_key_flag_and_revoke(cli_env):
    for _ in range(2):
        upgraded = runner.invoke(app, ["db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
    created = runner.invoke(app, ["keys", "create", "--role", "agent", "--name", "lead-anna"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    with cli_env() as session:
        assert authenticate(session, secret).role == "agent"
    listed = runner.invoke(app, ["keys", "list"])
    assert "lead-anna" in listed.stdout and secret not in listed.stdout
    expiring = runner.invoke(app, ["keys", "create", "--role", "viewer", "--name", "temp-dash", "--expires-days", "30"])
    assert expiring.exit_code == 0 and "expires" in expiring.output, expiring.output
    (row,) = [line for line in runner.invoke(app, ["keys", "list"]).stdout.splitlines() if "temp-dash" in line]
    assert "active until" in row
    assert runner.invoke(app, ["keys", "create", "--role", "viewer", "--expires-days", "0"]).exit_code == 2
    flagged = runner.invoke(app, ["flag"])
    assert flagged.exit_code == 0 and "scored" in flagged.output, flagged.output
    key_id = next(line.split("\t")[0] for line in listed.stdout.splitlines() if "lead-anna" in line)
    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    with cli_env() as session, pytest.raises(ApiError):
        authenticate(session, secret)
    bad = runner.invoke(app, ["keys", "create", "--role", "boss"])
    assert bad.exit_code == 2 and "unknown role" in bad.output
