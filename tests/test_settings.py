import pytest
from pydantic import ValidationError

from api.settings import Settings


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("CXM_BATCH_SIZE", "8")
    monkeypatch.setenv("CXM_LANGUAGES", '["en", "pl"]')
    s = Settings()
    assert s.batch_size == 8 and s.languages == ["en", "pl"]


def test_config_file_is_read_and_env_wins(tmp_path, monkeypatch):
    config = tmp_path / "cxm.toml"
    config.write_text('database_url = "sqlite:///x.db"\nbatch_size = 4\n')
    monkeypatch.setenv("CXM_CONFIG", str(config))
    monkeypatch.setenv("CXM_BATCH_SIZE", "16")
    s = Settings()
    assert s.database_url == "sqlite:///x.db" and s.batch_size == 16


def test_missing_config_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CXM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="CXM_CONFIG"):
        Settings()


@pytest.mark.parametrize(
    "field, value", [("batch_size", 0), ("languages", ["en"]), ("unknown_option", 1)]
)
def test_invalid_settings_are_rejected(field, value):
    with pytest.raises(ValidationError):
        Settings(**{field: value})
