"""Reasons, signals and topics measured on real, labelled feedback; ends with one JSON line.

Embeddings are cached under ``--cache-dir`` (keyed by the texts), so a second run costs
seconds. Run from the repository root: ``.venv/bin/python -m benchmarks.reasons_topics``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.topics_quality import cached_embeddings
from nlp.pipeline import AnalyzerConfig, build_encoder, build_sentiment
from nlp.reason_tagger import FewShotReasonHead, ZeroShotReasonTagger
from nlp.reason_taxonomy import load_taxonomy
from nlp.signals import RuleSignalDetector
from nlp.text_data import AIRLINE_TO_DEFAULT

REPO = Path(__file__).resolve().parents[1]
AIRLINE_TAXONOMY = REPO / "benchmarks" / "airline_reasons.yaml"
CHURN_LABELS = REPO / "benchmarks" / "labels" / "churn_intent_telco_nps.csv"
SEED = 0
FEW_SHOT_SIZES = (8, 32, None)


def airline_reason_frames(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Negative airline tweets with a known reason ("Can't Tell" carries none)."""
    frames = []
    for split in ("train", "test"):
        frame = pd.read_csv(data_dir / "benchmarks" / f"sentiment_en_airline.{split}.csv")
        frame = frame[(frame["label"] == "negative") & frame["reason"].notna()]
        frames.append(frame[frame["reason"] != "Can't Tell"].reset_index(drop=True))
    return frames[0], frames[1]


def nhs_topic_frame(data_dir: Path, min_rows: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Unique NHS comments with the union of their v6 topic labels (topics with few rows dropped)."""
    source = data_dir / "sources" / "nhs_patient_feedback_pxtextmining" / "v6framework_230831.csv"
    frame = pd.read_csv(source)
    topic_columns = list(frame.columns[frame.columns.get_loc("Comment sentiment") + 1 :])
    frame = frame[frame["FFT answer"].notna()].copy()
    frame["text"] = frame["FFT answer"].astype(str).str.strip()
    frame = frame[frame["text"] != ""]
    grouped = frame.groupby("text", sort=False)[topic_columns].max().fillna(0)
    kept = [c for c in topic_columns if grouped[c].sum() >= min_rows]
    return grouped.index.tolist(), grouped[kept].to_numpy(dtype=bool), kept


def telco_texts(data_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(data_dir / "sources" / "telco_nps_verbatims_en" / "telco_nps_verbatims.csv")
    return frame.reset_index().rename(columns={"index": "row"})


def reason_id(name: str) -> str:
    return name.lower().replace(" ", "_")


def single_label_scores(gold: list[str], predicted: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "top1_accuracy": round(accuracy_score(gold, predicted), 4),
        "macro_f1": round(f1_score(gold, predicted, average="macro", zero_division=0), 4),
    }


def multi_label_scores(gold: list[set[str]], predicted: list[list]) -> dict:
    """Micro precision/recall/F1 of the reasons a tagger keeps (above its threshold)."""
    tp = sum(len(g & {r.id for r in p}) for g, p in zip(gold, predicted))
    n_pred = sum(len(p) for p in predicted)
    n_gold = sum(len(g) for g in gold)
    precision, recall = tp / max(n_pred, 1), tp / max(n_gold, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "mean_reasons_kept": round(n_pred / max(len(predicted), 1), 3)}


def airline_reasons(embed, data_dir: Path, max_per_reason: int | None) -> dict:
    train, test = airline_reason_frames(data_dir)
    if max_per_reason is not None:
        train = (train.groupby("reason", group_keys=False)[list(train.columns)]
                 .apply(lambda g: g.sample(min(len(g), max_per_reason), random_state=SEED))
                 .reset_index(drop=True))
    X_train = embed(train["text"].tolist(), "airline-train")
    X_test = embed(test["text"].tolist(), "airline-test")
    gold = [reason_id(r) for r in test["reason"]]
    out = {"train_rows": len(train), "train_cap_per_reason": max_per_reason, "test_rows": len(test),
           "reasons": int(test["reason"].nunique())}

    taxonomy = load_taxonomy(AIRLINE_TAXONOMY)
    tagger = ZeroShotReasonTagger.from_taxonomy(taxonomy, _Encoder(embed))
    probabilities = tagger.predict_proba(X_test)
    top = [tagger.ids[j] for j in probabilities.argmax(axis=1)]
    out["zero_shot"] = {**single_label_scores(gold, top),
                        **{f"multi_label_{k}": v for k, v in
                           multi_label_scores([{g} for g in gold], tagger.tag(X_test)).items()}}

    default = ZeroShotReasonTagger.from_taxonomy(load_taxonomy(), _Encoder(embed))
    mapped_gold = [AIRLINE_TO_DEFAULT[r] for r in test["reason"]]
    mapped_top = [default.ids[j] for j in default.predict_proba(X_test).argmax(axis=1)]
    out["zero_shot_default_taxonomy"] = {
        **single_label_scores(mapped_gold, mapped_top),
        **{f"multi_label_{k}": v for k, v in
           multi_label_scores([{g} for g in mapped_gold], default.tag(X_test)).items()},
    }

    rng = np.random.default_rng(SEED)
    labels = np.array([reason_id(r) for r in train["reason"]])
    for size in FEW_SHOT_SIZES:
        if size is None:
            rows = np.arange(len(train))
        else:
            rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:size] for c in np.unique(labels)])
        started = time.perf_counter()
        head = FewShotReasonHead(class_weight="balanced").fit(X_train[rows], labels[rows].tolist())
        fit_s = time.perf_counter() - started
        out[f"few_shot_{size or 'all'}"] = {
            "train_rows": len(rows), "fit_s": round(fit_s, 2),
            **single_label_scores(gold, head.predict(X_test).tolist()),
        }
    # With every row: what balanced class weights and the L2 strength cost or buy (a grid on the
    # test split, so the best cell is optimistic; the default head, C=1 balanced, is few_shot_all).
    for weight, C in (("balanced", 10.0), (None, 1.0), (None, 10.0)):
        head = FewShotReasonHead(C=C, class_weight=weight).fit(X_train, labels.tolist())
        out[f"few_shot_all_{weight or 'unweighted'}_C{C:g}"] = single_label_scores(gold, head.predict(X_test).tolist())
    return out


def shipped_head_airline(model, data_dir: Path) -> dict:
    """The shipped text model's reason head on the airline test complaints, mapped to the default ids.

    The head was trained on the airline *train* split (mapped the same way), so this is in-domain.
    """
    _, test = airline_reason_frames(data_dir)
    probabilities = model.scores(test["text"].tolist()).reasons
    gold = [AIRLINE_TO_DEFAULT[r] for r in test["reason"]]
    top = [model.reason_ids[j] for j in probabilities.argmax(axis=1)]
    kept = [[model.reason_ids[j] for j in np.flatnonzero(row >= model.reason_threshold)] for row in probabilities]
    tp = sum(g in k for g, k in zip(gold, kept))
    n_kept = sum(len(k) for k in kept)
    return {"test_rows": len(test), **single_label_scores(gold, top),
            "multi_label_precision": round(tp / max(n_kept, 1), 4), "multi_label_recall": round(tp / len(gold), 4),
            "mean_reasons_kept": round(n_kept / len(gold), 3)}


def nhs_topics(embed, data_dir: Path, max_texts: int, min_rows: int = 20) -> dict:
    """Multi-label head on the NHS v6 topics: a fixed 70/30 split of (up to) ``max_texts`` comments."""
    texts, Y, topics = nhs_topic_frame(data_dir, min_rows)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(texts))[:max_texts]
    texts, Y = [texts[i] for i in order], Y[order]
    has_topic = Y.any(axis=1)
    texts, Y = [t for t, k in zip(texts, has_topic) if k], Y[has_topic]
    X = embed(texts, "nhs")
    cut = int(0.7 * len(texts))
    names = np.array(topics)
    train_labels = [names[row].tolist() for row in Y[:cut]]
    present = Y[:cut].any(axis=0) & ~Y[:cut].all(axis=0)
    head = FewShotReasonHead(class_weight="balanced").fit(X[:cut], train_labels)
    predicted = head.tag(X[cut:])
    gold = [set(names[row].tolist()) for row in Y[cut:]]
    return {"texts": len(texts), "train_rows": cut, "test_rows": len(texts) - cut,
            "topics": int(present.sum()), "threshold": head.threshold_,
            **multi_label_scores(gold, predicted)}


def churn_intent_labels(detector, data_dir: Path) -> dict:
    """Precision/recall of churn intent on real NPS verbatims hand-labelled for this benchmark.

    The label file holds row numbers of ``telco_nps_verbatims.csv`` (the texts stay in the shared
    data): every answer mentioning cancel/leave/switch/contract/... (217, most of them orders the
    company cancelled) plus 60 random others; 16 express the customer's intent to leave.
    """
    labels = pd.read_csv(CHURN_LABELS)
    frame = labels.merge(telco_texts(data_dir)[["row", "text"]], on="row", how="left", validate="one_to_one")
    gold = frame["churn_intent"].astype(bool).to_numpy()
    predicted = np.array([s.churn_intent for s in detector.detect(frame["text"].tolist(), ["en"] * len(frame))])
    tp = int((gold & predicted).sum())
    return {"rows": len(frame), "positives": int(gold.sum()), "predicted": int(predicted.sum()),
            "precision": round(tp / max(predicted.sum(), 1), 4), "recall": round(tp / max(gold.sum(), 1), 4)}


def signal_rates(detector, data_dir: Path) -> dict:
    """How often each signal fires on the real NPS verbatims, by promoter/passive/detractor."""
    frame = telco_texts(data_dir)
    frame = frame[frame["text"].notna() & (frame["text"].astype(str).str.strip() != "")]
    started = time.perf_counter()
    signals = detector.detect(frame["text"].astype(str).tolist(), ["en"] * len(frame))
    seconds = time.perf_counter() - started
    frame = frame.assign(churn=[s.churn_intent for s in signals], effort=[s.effort for s in signals],
                         urgency=[s.urgency for s in signals])
    by = frame.groupby("NPS_RATING")[["churn", "effort", "urgency"]].mean().round(4)
    return {"texts": len(frame), "texts_per_s": round(len(frame) / seconds), "by_nps_group": by.to_dict(orient="index")}


class _Encoder:
    """Adapter so taxonomy phrases go through the same cached embedding function."""

    def __init__(self, embed):
        self.embed = embed

    def encode(self, texts):
        return self.embed(list(texts), "phrases")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "benchmarks")
    parser.add_argument("--nhs-texts", type=int, default=1500)
    parser.add_argument("--only-airline", action="store_true", help="Run only the airline reasons section.")
    parser.add_argument("--max-train-per-reason", type=int, default=0,
                        help="Cap the airline training rows per reason (0: all; embedding is the slow part).")
    args = parser.parse_args()

    config = AnalyzerConfig()
    encoder = None

    def embed(texts: list[str], name: str) -> np.ndarray:
        def factory():
            nonlocal encoder
            encoder = encoder or build_encoder(config)
            return encoder
        return cached_embeddings(factory, texts, name, args.cache_dir)

    sections = {}
    sections["reasons_airline"] = airline_reasons(embed, args.data_dir, args.max_train_per_reason or None)
    sections["reasons_airline"]["shipped_head_default_taxonomy"] = shipped_head_airline(
        build_sentiment(config, encoder or build_encoder(config)), args.data_dir)
    print(json.dumps({"reasons_airline": sections["reasons_airline"]}, indent=1))
    if args.only_airline:
        print(json.dumps(sections))
        return
    sections["reasons_nhs"] = nhs_topics(embed, args.data_dir, args.nhs_texts)
    print(json.dumps({"reasons_nhs": sections["reasons_nhs"]}, indent=1))
    detector = RuleSignalDetector(ner=False)
    sections["churn_intent"] = churn_intent_labels(detector, args.data_dir)
    sections["signal_rates_telco"] = signal_rates(detector, args.data_dir)
    print(json.dumps({k: sections[k] for k in ("churn_intent", "signal_rates_telco")}, indent=1))
    sections["topics"] = run_topics_section(embed, args.data_dir)
    print(json.dumps(sections))


def run_topics_section(embed, data_dir: Path) -> dict:
    """Topics (owned by the topics engineer): quality on telco verbatims, agreement on NHS categories."""
    from benchmarks.topics_quality import topics_section

    return topics_section(embed, lambda: build_encoder(AnalyzerConfig()), data_dir)


if __name__ == "__main__":
    main()
