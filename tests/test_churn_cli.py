"""`cxm train churn`, `cxm churn score` and `cxm churn evaluate` end to end on small inputs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from api.cli import app
from churn.simulate import simulate

runner = CliRunner()


def _write_tables(sim, directory):
    tables = sim.tables
    feedback = tables.feedback.drop(columns=["sentiment_score", "text_reasons", "churn_intent", "competitors"])
    feedback = feedback.assign(reasons=feedback["reasons"].map(";".join))
    paths = {}
    for name, frame in (("customers", tables.customers), ("feedback", feedback),
                        ("tickets", tables.tickets), ("outcomes", tables.outcomes)):
        paths[name] = directory / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


@pytest.mark.slow
def test_train_score_and_evaluate_from_files(tmp_path):
    paths = _write_tables(simulate(500, seed=21), tmp_path)
    tables = [f"--{name}={path}" for name, path in paths.items()]
    model_dir = tmp_path / "model"
    trained = runner.invoke(app, ["train", "churn", *tables, "-o", str(model_dir), "--no-text"])
    assert trained.exit_code == 0, trained.output
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["data"]["source"] == "user tables" and card["metrics"]["roc_auc"] > 0.5

    out = tmp_path / "scores.csv"
    scored = runner.invoke(app, ["churn", "score", "-m", str(model_dir), *tables[:3], "--capacity", "10",
                                 "--no-text", "-o", str(out)])
    assert scored.exit_code == 0, scored.output
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns) == ["customer_id", "probability", "tier", "reasons"]
    assert (scores["tier"] == "high").sum() == 10 and scores["probability"].is_monotonic_decreasing
    assert scores.loc[scores["tier"] == "high", "reasons"].str.len().min() > 0

    evaluated = runner.invoke(app, ["churn", "evaluate", "-m", str(model_dir), "--simulate", "300",
                                    "--seed", "4", "--no-text"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert 0 < metrics["roc_auc"] <= 1 and metrics["cutoffs"] > 1


def test_simulated_scoring_with_the_default_model_writes_jsonl(tmp_path):
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["churn", "score", "--simulate", "150", "--no-text", "--threshold", "0.2",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and set(rows[0]) == {"customer_id", "probability", "tier", "reasons", "drivers"}
    assert all(r["reasons"] == [d["text"] for d in r["drivers"]] for r in rows)
    assert any(d["evidence"] for r in rows for d in r["drivers"])


def test_scores_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path):
    """Customer ids come from the user's files: written to CSV they must not start a formula."""
    sim = simulate(150, seed=5)
    formulas = {cid: prefix + cid for cid, prefix in zip(sim.tables.customers["customer_id"], "=+-@")}
    for frame in (sim.tables.customers, sim.tables.feedback, sim.tables.tickets, sim.tables.outcomes):
        frame["customer_id"] = frame["customer_id"].replace(formulas)
    paths = _write_tables(sim, tmp_path)
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["churn", "score", *[f"--{n}={paths[n]}" for n in ("customers", "feedback", "tickets")],
                                 "--no-text", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ids = set(pd.read_csv(out, keep_default_na=False, dtype=str)["customer_id"])
    assert {"'" + f for f in formulas.values()} <= ids
    assert not any(i.startswith(("=", "+", "-", "@")) for i in ids)


def test_bad_tables_and_bad_models_fail_with_a_clear_message(tmp_path):
    paths = _write_tables(simulate(60, seed=2), tmp_path)
    feedback = pd.read_csv(paths["feedback"])
    feedback.loc[3, "nps"] = 11
    feedback.to_csv(paths["feedback"], index=False)
    tables = [f"--{name}={path}" for name, path in paths.items()]
    result = runner.invoke(app, ["train", "churn", *tables, "-o", str(tmp_path / "m"), "--no-text"])
    assert result.exit_code == 2
    assert "feedback: row 3, column 'nps': 11 is not an integer in [0, 10]" in result.output

    result = runner.invoke(app, ["churn", "score", "-m", str(tmp_path), "--simulate", "60", "-o",
                                 str(tmp_path / "s.csv")])
    assert result.exit_code == 2 and "no model_card.json" in result.output


def test_dates_in_the_future_are_refused(tmp_path):
    paths = _write_tables(simulate(60, seed=2), tmp_path)
    feedback = pd.read_csv(paths["feedback"])
    feedback.loc[5, "timestamp"] = "2052-01-01T00:00:00"  # a mistyped year
    feedback.to_csv(paths["feedback"], index=False)
    tables = [f"--{name}={path}" for name, path in paths.items()]
    result = runner.invoke(app, ["train", "churn", *tables, "-o", str(tmp_path / "m"), "--no-text"])
    assert result.exit_code == 2
    assert "feedback: row 5, column 'timestamp': 2052-01-01 00:00:00 is after as_of" in result.output


def test_tables_are_checked_against_the_deployments_own_taxonomy(tmp_path, monkeypatch):
    from api.settings import get_settings

    paths = _write_tables(simulate(60, seed=2), tmp_path)
    feedback = pd.read_csv(paths["feedback"], keep_default_na=False)
    picked = feedback["reasons"] != ""
    feedback.loc[picked, "reasons"] = "roaming"
    feedback.to_csv(paths["feedback"], index=False)
    tables = [f"--{name}={path}" for name, path in paths.items()]
    args = ["train", "churn", *tables, "-o", str(tmp_path / "m"), "--no-text"]

    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "roaming" in refused.output

    own = tmp_path / "reasons.yaml"
    own.write_text("version: 1\nreasons:\n"
                   "  - id: roaming\n    label: {en: Roaming}\n    description: {en: roaming charges abroad}\n"
                   "  - id: other\n    label: {en: Other}\n    description: {en: anything else}\n", encoding="utf-8")
    monkeypatch.setenv("CXM_REASON_TAXONOMY", str(own))
    get_settings.cache_clear()
    try:
        trained = runner.invoke(app, args)
    finally:
        get_settings.cache_clear()
    assert trained.exit_code == 0, trained.output
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["features"]["reason_ids"] == ["roaming", "other"]
    assert "picked_roaming" in card["features"]["columns"]


@pytest.mark.slow
def test_cold_start_training_on_a_sparse_simulation(tmp_path):
    from churn.features import cold_start_columns
    from churn.phrasebook import REASON_IDS

    trained = runner.invoke(app, ["train", "churn", "--simulate", "400", "--seed", "3", "--sparse", "0.3",
                                  "--cold-start", "--no-text", "-o", str(tmp_path)])
    assert trained.exit_code == 0, trained.output
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["features"]["columns"] == cold_start_columns(REASON_IDS)
    assert set(card["validation"]) == {"gbm/sigmoid"} and card["model"]["shrink"] == 0.2
    assert "sparse share 0.3" in card["data"]["source"]
    bad = runner.invoke(app, ["train", "churn", "--simulate", "400", "--sparse", "2", "-o", str(tmp_path)])
    assert bad.exit_code != 0 and "--sparse" in bad.output
