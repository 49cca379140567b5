"""The full analyzer on the hand-written CX evaluation files (never trained on): sentiment per
language with neutral recall, reason top-1, churn-intent precision/recall; ends with one JSON line.

Run from the repository root: ``.venv/bin/python -m benchmarks.cx_holdout [--model DIR]``.
``data/cx/holdout.csv`` has sentiment, reasons and churn labels (225 rows); ``churn_intent_eval.csv``
has churn labels with hard negatives (375 rows). The two are also scored with the phrase rules
alone (the pre-model default) for comparison.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from nlp import AnalyzerConfig, FeedbackAnalyzer
from nlp.signals import churn_intent

CX_DIR = Path(__file__).resolve().parents[1] / "data" / "cx"


def churn_scores(gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average="binary", zero_division=0)
    return {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin", help="'builtin' or a `cxm train sentiment` directory")
    parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    parser.add_argument("--errors", action="store_true", help="print every misread row")
    args = parser.parse_args()

    analyzer = FeedbackAnalyzer.from_config(AnalyzerConfig(sentiment_model=args.model, backend=args.backend))
    holdout = pd.read_csv(CX_DIR / "holdout.csv", dtype={"reasons": str}, keep_default_na=False)
    churn_eval = pd.read_csv(CX_DIR / "churn_intent_eval.csv")
    found = analyzer.analyze(holdout["text"].tolist())
    holdout["predicted"] = [a.sentiment.label for a in found]
    holdout["top_reason"] = [a.reasons[0].id if a.reasons else "" for a in found]
    holdout["churn_predicted"] = [int(a.signals.churn_intent) for a in found]

    sentiment = {}
    for lang, rows in holdout.groupby("lang"):
        neutral = rows["sentiment"] == "neutral"
        sentiment[lang] = {
            "n": len(rows), "accuracy": round(accuracy_score(rows["sentiment"], rows["predicted"]), 4),
            "macro_f1": round(f1_score(rows["sentiment"], rows["predicted"], average="macro"), 4),
            "neutral_recall": round(float((rows.loc[neutral, "predicted"] == "neutral").mean()), 4),
        }
    with_reason = holdout[holdout["reasons"] != ""]
    top1 = [top in gold.split(";") for top, gold in zip(with_reason["top_reason"], with_reason["reasons"])]
    reasons = {"n": len(with_reason), "top1": round(float(np.mean(top1)), 4),
               "per_lang": {lang: round(float(np.mean([t for t, l in zip(top1, with_reason["lang"]) if l == lang])), 4)
                            for lang in sorted(with_reason["lang"].unique())}}

    signals = [a.signals for a in analyzer.analyze(churn_eval["text"].tolist())]
    churn_eval["predicted"] = [int(s.churn_intent) for s in signals]
    churn = {
        "holdout": churn_scores(holdout["churn_intent"].to_numpy(), holdout["churn_predicted"].to_numpy()),
        "eval": churn_scores(churn_eval["churn_intent"].to_numpy(), churn_eval["predicted"].to_numpy()),
        "eval_per_lang": {lang: churn_scores(rows["churn_intent"].to_numpy(), rows["predicted"].to_numpy())
                          for lang, rows in churn_eval.groupby("lang")},
        "eval_rules_only": churn_scores(churn_eval["churn_intent"].to_numpy(),
                                        np.array([int(churn_intent(t)) for t in churn_eval["text"]])),
    }
    churn["eval_misses_by_category"] = (
        churn_eval[churn_eval["predicted"] != churn_eval["churn_intent"]]["category"].value_counts().to_dict())

    for lang, row in sentiment.items():
        print(f"sentiment {lang}: acc {row['accuracy']:.3f} macro-F1 {row['macro_f1']:.3f} "
              f"neutral recall {row['neutral_recall']:.3f} (n={row['n']})")
    print(f"reason top-1 {reasons['top1']:.3f} on {reasons['n']} rows {reasons['per_lang']}")
    for name in ("holdout", "eval", "eval_rules_only"):
        print(f"churn intent {name}: {churn[name]}")
    print(f"churn misses by category: {churn['eval_misses_by_category']}")
    if args.errors:
        wrong = holdout[(holdout["predicted"] != holdout["sentiment"])]
        for row in wrong.itertuples():
            print(f"  sentiment {row.sentiment} -> {row.predicted}: {row.text}")
        for row in churn_eval[churn_eval["predicted"] != churn_eval["churn_intent"]].itertuples():
            print(f"  churn {row.churn_intent} ({row.category}): {row.text}")
    print(json.dumps({"benchmark": "cx_holdout", "model": args.model, "backend": args.backend,
                      "sentiment": sentiment, "reasons": reasons, "churn_intent": churn}))


if __name__ == "__main__":
    main()
