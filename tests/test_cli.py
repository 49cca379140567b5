from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("setup", "demo", "analyze", "train"):
        assert command in result.output


def test_setup_reports_the_encoder(settings):
    result = runner.invoke(app, ["setup"])
    assert result.exit_code == 0, result.output
    assert "dim 384" in result.output


def test_demo_runs_on_the_bundled_multilingual_set():
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    for language in ("en", "sv", "pl"):
        assert f"│ {language}" in result.output
    assert "Topics in the same texts" in result.output and " · " in result.output  # topic labels
    assert "Telia" in result.output.split("competitors named")[1].splitlines()[0]
    assert "At-risk customers" in result.output
