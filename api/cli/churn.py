"""``cxm train churn``, ``cxm churn evaluate``, ``cxm churn score`` and ``cxm churn retrain``.

Tables come from files (CSV, JSONL or Parquet; see ``churn/schema.py`` for the columns) or from
the simulator (``--simulate N``). Feedback texts are analysed with the configured analyzer
(``api.components.build_analyzer``) unless ``--no-text``. ``retrain`` learns from the service's
own database instead, as ``POST /v1/admin/retrain`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer

from api.cli.app import app, fail, train_app
from api.components import build_analyzer
from api.settings import get_settings
from api.tables import TableError, csv_safe, read_table, write_jsonl
from churn.features import DAY, cold_start_columns
from churn.model import ChurnModel
from churn.persistence import ModelLoadError
from churn.schema import ChurnTables, SchemaError, validate_tables
from churn.scoring import score_at
from churn.text_features import annotate_tables, text_heads
from churn.training import data_end, default_cutoffs, evaluate, train_churn_model

churn_app = typer.Typer(help="Score and evaluate churn-risk models.", no_args_is_help=True)
app.add_typer(churn_app, name="churn")

COLD_START_SHRINK = 0.2
SIMULATE = typer.Option(None, "--simulate", min=50, help="Use N simulated customers instead of files.")
SEED = typer.Option(0, "--seed", help="Simulator seed.")
CUSTOMERS = typer.Option(None, "--customers", help="customers table (CSV/JSONL/Parquet).")
FEEDBACK = typer.Option(None, "--feedback", help="feedback events table.")
TICKETS = typer.Option(None, "--tickets", help="support tickets table.")
OUTCOMES = typer.Option(None, "--outcomes", help="outcomes table (customer_id, churned_at).")
TEXT = typer.Option(True, "--text/--no-text", help="Analyse feedback texts with the configured heads.")
MODEL = typer.Option(None, "--model", "-m", help="Model directory (default: the one shipped with cxm).")


def _read(path: Path) -> pd.DataFrame:
    return read_table(path, text_column="customer_id")


def _tables(simulate: int | None, seed: int, customers: Path | None, feedback: Path | None,
            tickets: Path | None, outcomes: Path | None, *, need_outcomes: bool, sparse: float = 0.0
            ) -> tuple[ChurnTables, pd.Timestamp, str, list[str]]:
    """Validated tables, the moment they end, where they came from, and their reason taxonomy."""
    if simulate is not None:
        if any(p is not None for p in (customers, feedback, tickets, outcomes)):
            raise fail("give either --simulate or table files, not both")
        from churn.phrasebook import REASON_IDS
        from churn.simulate import simulate as run_simulation

        sim = run_simulation(simulate, seed=seed, sparse=sparse)
        return (sim.tables, sim.end, f"simulated ({simulate} customers, seed {seed}, sparse share {sparse:g})",
                list(REASON_IDS))
    if customers is None or feedback is None or tickets is None or (need_outcomes and outcomes is None):
        needed = "--customers, --feedback, --tickets" + (" and --outcomes" if need_outcomes else "")
        raise fail(f"give --simulate N or the table files {needed}")
    from nlp.reason_taxonomy import load_taxonomy

    # The deployment's own taxonomy (CXM_REASON_TAXONOMY); no date may lie in the future.
    reason_ids = load_taxonomy(get_settings().reason_taxonomy).ids
    try:
        frames = [_read(customers), _read(feedback), _read(tickets),
                  _read(outcomes) if outcomes is not None else pd.DataFrame({"customer_id": [], "churned_at": []})]
        tables = validate_tables(*frames, reason_ids=reason_ids, as_of=pd.Timestamp.now(tz="UTC"))
    except (TableError, SchemaError) as exc:
        raise fail(str(exc)) from exc
    return tables, data_end(tables), "user tables", reason_ids


def _annotated(tables: ChurnTables, text: bool) -> tuple[ChurnTables, list[str]]:
    if not text:
        return tables, []
    analyzer = build_analyzer(get_settings())
    return annotate_tables(tables, analyzer), text_heads(analyzer)


def _load(model_dir: Path | None):
    try:
        return ChurnModel.load(model_dir)
    except ModelLoadError as exc:
        raise fail(str(exc)) from exc


@train_app.command("churn")
def train_churn(
    output: Path = typer.Option(..., "-o", "--output", help="Directory for the model and its card."),
    simulate: int | None = SIMULATE, seed: int = SEED, customers: Path | None = CUSTOMERS,
    feedback: Path | None = FEEDBACK, tickets: Path | None = TICKETS, outcomes: Path | None = OUTCOMES,
    horizon_days: int = typer.Option(90, min=7, help="Label: churn within this many days of a cutoff."),
    window_days: int = typer.Option(90, min=7, help="Features count events in this many days before it."),
    text: bool = TEXT,
    cold_start: bool = typer.Option(
        False, "--cold-start", help="Only the signals a CX lead ranks by, monotone GBM, sigmoid calibration, "
        f"probabilities shrunk by {COLD_START_SHRINK} towards the churn rate (for a model trained before real "
        "outcomes exist, e.g. on the simulator)."),
    sparse: float = typer.Option(0.0, "--sparse", min=0.0, max=1.0,
                                 help="With --simulate: share of customers with one NPS answer and nothing else."),
) -> None:
    """Train on earlier cutoffs, pick GBM or logistic and the calibration on later ones, refit, save."""
    tables, end, source, reason_ids = _tables(simulate, seed, customers, feedback, tickets, outcomes,
                                              need_outcomes=True, sparse=sparse)
    tables, heads = _annotated(tables, text)
    options = {"columns": cold_start_columns(reason_ids), "estimators": ("gbm",), "calibrations": ("sigmoid",),
               "shrink": COLD_START_SHRINK} if cold_start else {}
    try:
        result = train_churn_model(tables, reason_ids, horizon_days=horizon_days,
                                   window_days=window_days, observed_until=end, text_heads=heads,
                                   source=source, **options)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    result.model.save(output, result.card)
    chosen = result.card["model"]
    metrics = result.card["metrics"]
    typer.echo(f"{chosen['estimator']} + {chosen['calibration']} calibration, validation ROC-AUC "
               f"{metrics['roc_auc']:.3f}, PR-AUC {metrics['pr_auc']:.3f}, Brier {metrics['brier']:.4f} "
               f"-> {output}", err=True)


@churn_app.command("evaluate")
def evaluate_churn(
    model_dir: Path | None = MODEL, simulate: int | None = SIMULATE, seed: int = SEED,
    customers: Path | None = CUSTOMERS, feedback: Path | None = FEEDBACK, tickets: Path | None = TICKETS,
    outcomes: Path | None = OUTCOMES, text: bool = TEXT,
) -> None:
    """Metrics (ROC-AUC, PR-AUC, Brier, ECE, lift) on every fully observed cutoff of the tables, as JSON."""
    model = _load(model_dir)
    tables, end, source, _ = _tables(simulate, seed, customers, feedback, tickets, outcomes, need_outcomes=True)
    tables, _ = _annotated(tables, text)
    try:
        cutoffs = default_cutoffs(tables, horizon_days=model.horizon_days, window_days=model.window_days,
                                  observed_until=end)
        metrics = evaluate(model, tables, cutoffs, observed_until=end)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps({"source": source, "cutoffs": len(cutoffs), **metrics}))


@churn_app.command("score")
def score_churn(
    output: Path = typer.Option(..., "-o", "--output", help="CSV or JSONL file to write."),
    model_dir: Path | None = MODEL, simulate: int | None = SIMULATE, seed: int = SEED,
    customers: Path | None = CUSTOMERS, feedback: Path | None = FEEDBACK, tickets: Path | None = TICKETS,
    outcomes: Path | None = OUTCOMES, text: bool = TEXT,
    cutoff: str | None = typer.Option(None, help="Score as of this date (default: a day after the data ends)."),
    threshold: float | None = typer.Option(None, min=0, max=1, help="Probability for the high tier."),
    capacity: int | None = typer.Option(None, min=0, help="How many customers the team can call (top N)."),
) -> None:
    """Write customer_id, probability, tier and reasons for every customer active at the cutoff."""
    model = _load(model_dir)
    tables, end, _, _ = _tables(simulate, seed, customers, feedback, tickets, outcomes, need_outcomes=False)
    tables, _ = _annotated(tables, text)
    try:
        moment = pd.Timestamp(cutoff) if cutoff else end.normalize() + DAY
    except ValueError as exc:
        raise fail(f"--cutoff {cutoff!r} is not a date") from exc
    scores = score_at(model, tables, moment, threshold=threshold, capacity=capacity)
    scores = scores.sort_values("probability", ascending=False, kind="stable")
    columns = ["customer_id", "probability", "tier", "reasons"]
    if output.suffix.lower() == ".csv":
        flat = scores[columns].assign(reasons=scores["reasons"].map("; ".join))
        csv_safe(flat).to_csv(output, index=False)
    elif output.suffix.lower() in (".jsonl", ".json"):
        write_jsonl(scores[[*columns, "drivers"]].to_dict(orient="records"), output)
    else:
        raise fail(f"{output}: write .csv or .jsonl")
    counts = scores["tier"].value_counts()
    typer.echo(f"scored {len(scores)} customers as of {moment.date()}: {counts.get('high', 0)} high, "
               f"{counts.get('medium', 0)} medium -> {output}", err=True)


@churn_app.command("retrain")
def retrain_churn(
    force: bool = typer.Option(False, "--force", help="Activate the new model even if it validates worse."),
) -> None:
    """Retrain on the service's database (feedback, analyses, outcomes) and activate the model if not worse."""
    from api.cli.serve import _sessions
    from api.services.retraining import RetrainInProgress, RunLost, churn_model_dir, retrain

    settings = get_settings()
    sessions = _sessions()
    with sessions() as session:
        current = _load(churn_model_dir(session, settings))
    try:
        run = retrain(sessions, settings, current, "cxm churn retrain", force=force).run
    except (RetrainInProgress, RunLost) as exc:
        raise fail(str(exc)) from exc
    if run.status == "failed":
        raise fail(f"run {run.id} failed: {run.error}")
    metrics, baseline = run.metrics, run.baseline
    compared = (f"in service {baseline['model_version']}: PR-AUC {baseline['metrics']['pr_auc']:.3f}"
                if baseline["comparable"] else baseline["reason"])
    verdict = (f"activated (running services load it within CXM_MODEL_REFRESH_INTERVAL_S) -> {run.path}" if run.activated
               else f"not activated: {run.error}")
    typer.echo(f"run {run.id} {run.status}: {run.model_version}, validation ROC-AUC {metrics['roc_auc']:.3f}, "
               f"PR-AUC {metrics['pr_auc']:.3f} ({compared}); {verdict}", err=True)
