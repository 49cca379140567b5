"""Assemble the text model's multi-task training data: sentiment, NPS+ reasons, churn intent.

Read at training time, never committed: every ``.train.csv`` row of the five public sentiment sets
(``<data_dir>/benchmarks``), banking77 intents mapped onto the default reasons, and the
hand-written CX rows in ``data/cx/train_*.csv`` (the only rows with all three labels). A label a
source does not carry is masked (``sentiment == ""``, ``reasons is None``, ``churn == -1``), so
each head learns only from rows that were labelled for it. No ``.test.csv`` is read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nlp.results import SENTIMENT_LABELS

HANDWRITTEN_DIR = Path(__file__).resolve().parents[1] / "data" / "cx"
SENTIMENT_SETS = (
    "sentiment_en_airline",
    "sentiment_sv_reviews",
    "sentiment_sv_social",
    "sentiment_pl_polemo_medicine",
    "sentiment_pl_allegro_sellers",
)
# Airline complaint reasons -> the default NPS+ taxonomy ("Can't Tell" carries no reason).
AIRLINE_TO_DEFAULT = {
    "Customer Service Issue": "customer_support",
    "Flight Attendant Complaints": "customer_support",
    "longlines": "customer_support",
    "Late Flight": "reliability",
    "Cancelled Flight": "reliability",
    "Lost Luggage": "delivery",
    "Damaged Luggage": "product_quality",
    "Bad Flight": "product_quality",
    "Flight Booking Problems": "usability",
}
# banking77 intents whose topic is plainly one default reason; the rest carry none of them.
BANKING77_TO_DEFAULT = {
    **dict.fromkeys([
        "extra_charge_on_statement", "card_payment_fee_charged", "transaction_charged_twice",
        "request_refund", "Refund_not_showing_up", "direct_debit_payment_not_recognised",
        "card_payment_not_recognised", "cash_withdrawal_charge", "exchange_charge",
        "top_up_by_card_charge", "top_up_by_bank_transfer_charge", "transfer_fee_charged",
        "wrong_amount_of_cash_received", "cash_withdrawal_not_recognised",
        "card_payment_wrong_exchange_rate", "wrong_exchange_rate_for_cash_withdrawal",
    ], "billing"),
    **dict.fromkeys(["card_arrival", "card_delivery_estimate"], "delivery"),
    **dict.fromkeys([
        "card_not_working", "contactless_not_working", "virtual_card_not_working", "declined_card_payment",
        "declined_transfer", "declined_cash_withdrawal", "failed_transfer", "top_up_failed", "card_swallowed",
    ], "reliability"),
    **dict.fromkeys([
        "passcode_forgotten", "pin_blocked", "unable_to_verify_identity", "exchange_via_app",
    ], "usability"),
    **dict.fromkeys([
        "fiat_currency_support", "apple_pay_or_google_pay", "country_support", "supported_cards_and_currencies",
        "get_disposable_virtual_card", "disposable_card_limits", "top_up_limits", "automatic_top_up",
        "visa_or_mastercard",
    ], "features"),
}
BANKING77_CHURN = "terminate_account"
BANKING77_UNMAPPED_CAP = 1500
# Public rows never say whether the writer leaves; they are weak churn negatives unless they
# mention leaving at all (then unknown).
_LEAVING = re.compile(
    r"\b(?:cancel\w*|leav\w*|switch\w*|terminat\w*|clos\w*|quit\w*|done with|never again|"
    r"säg\w* upp|uppsäg\w*|byt\w*|lämna\w*|avslut\w*|"
    r"rezygn\w*|wypowi\w*|zrezygn\w*|odchodz\w*|przechodz\w*|zmieni\w*|zamkn\w*|nigdy więcej)",
    re.IGNORECASE,
)
COLUMNS = ["text", "lang", "source", "sentiment", "reasons", "churn", "handwritten", "valid"]


def _split_valid(frame: pd.DataFrame, strata: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """A stratified random ``fraction`` of the rows, as a boolean mask."""
    rng = np.random.default_rng(seed)
    valid = np.zeros(len(frame), dtype=bool)
    for _, members in strata.reset_index(drop=True).groupby(strata.values).groups.items():
        members = rng.permutation(np.asarray(members))
        valid[members[: int(round(len(members) * fraction))]] = True
    return valid


def public_sentiment_rows(data_dir: Path, seed: int, valid_fraction: float) -> pd.DataFrame:
    frames = []
    for name in SENTIMENT_SETS:
        path = data_dir / "benchmarks" / f"{name}.train.csv"
        if not path.is_file():
            raise FileNotFoundError(f"training split not found: {path}")
        frame = pd.read_csv(path).dropna(subset=["text", "label"])
        frame = frame[frame["text"].str.strip().astype(bool)].reset_index(drop=True)
        bad = set(frame["label"]) - set(SENTIMENT_LABELS)
        if bad:
            raise ValueError(f"{path}: unknown labels {sorted(bad)}")
        if "reason" in frame:
            mapped = frame["reason"].map(AIRLINE_TO_DEFAULT)
            reasons = [[r] if isinstance(r, str) else None for r in mapped]
        else:
            reasons = [None] * len(frame)
        churn = np.where(frame["text"].str.contains(_LEAVING), -1, 0)
        frames.append(pd.DataFrame({
            "text": frame["text"], "lang": frame["lang"], "source": name, "sentiment": frame["label"],
            "reasons": reasons, "churn": churn, "handwritten": False,
            "valid": _split_valid(frame, frame["label"], valid_fraction, seed),
        }))
    return pd.concat(frames, ignore_index=True)


def banking77_rows(data_dir: Path, seed: int, valid_fraction: float) -> pd.DataFrame:
    path = data_dir / "sources" / "banking77_en" / "train.csv"
    if not path.is_file():
        raise FileNotFoundError(f"banking77 training file not found: {path}")
    frame = pd.read_csv(path).dropna(subset=["text", "category"])
    known = frame["category"].isin([*BANKING77_TO_DEFAULT, BANKING77_CHURN])
    rest = frame[~known].sample(n=min(BANKING77_UNMAPPED_CAP, int((~known).sum())), random_state=seed)
    frame = pd.concat([frame[known], rest], ignore_index=True)
    reasons = [[BANKING77_TO_DEFAULT[c]] if c in BANKING77_TO_DEFAULT else
               (None if c == BANKING77_CHURN else []) for c in frame["category"]]
    return pd.DataFrame({
        "text": frame["text"], "lang": "en", "source": "banking77", "sentiment": "",
        "reasons": reasons, "churn": (frame["category"] == BANKING77_CHURN).astype(int), "handwritten": False,
        "valid": _split_valid(frame, frame["category"], valid_fraction, seed),
    })


def handwritten_rows(cx_dir: Path, seed: int, valid_fraction: float) -> pd.DataFrame:
    """``train_*.csv`` under ``cx_dir`` (never the evaluation files)."""
    paths = sorted(cx_dir.glob("train_*.csv"))
    if not paths:
        raise FileNotFoundError(f"no hand-written train_*.csv files in {cx_dir}")
    frames = []
    for path in paths:
        frame = pd.read_csv(path, dtype={"reasons": str}, keep_default_na=False)
        missing = {"text", "lang", "sentiment", "reasons", "churn_intent"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        bad = set(frame["sentiment"]) - set(SENTIMENT_LABELS)
        if bad:
            raise ValueError(f"{path}: unknown sentiment labels {sorted(bad)}")
        churn = frame["churn_intent"].astype(int)
        frames.append(pd.DataFrame({
            "text": frame["text"], "lang": frame["lang"], "source": path.stem, "sentiment": frame["sentiment"],
            "reasons": [[r for r in s.split(";") if r] for s in frame["reasons"]], "churn": churn,
            "handwritten": True,
            "valid": _split_valid(frame, frame["sentiment"] + churn.astype(str), valid_fraction, seed),
        }))
    return pd.concat(frames, ignore_index=True)


def load_text_training_data(
    data_dir: str | Path,
    cx_dir: str | Path = HANDWRITTEN_DIR,
    *,
    seed: int = 0,
    public_valid: float = 0.05,
    handwritten_valid: float = 0.15,
    cap: float = 1.0,
) -> pd.DataFrame:
    """All rows (columns :data:`COLUMNS`); ``valid`` marks the rows kept for model selection.

    ``cap`` < 1 keeps that fraction of each public source (for quick runs); hand-written rows are
    always kept whole.
    """
    public = pd.concat([public_sentiment_rows(Path(data_dir), seed, public_valid),
                        banking77_rows(Path(data_dir), seed, public_valid)], ignore_index=True)
    if cap < 1.0:
        public = public.groupby("source", group_keys=False).sample(frac=cap, random_state=seed)
    frame = pd.concat([public, handwritten_rows(Path(cx_dir), seed, handwritten_valid)], ignore_index=True)
    return frame[COLUMNS].reset_index(drop=True)


def describe(frame: pd.DataFrame) -> dict:
    """Row counts per source and split, for logs and the model's config."""
    counts = frame.groupby(["source", "valid"]).size().unstack(fill_value=0)
    return json.loads(counts.rename(columns={False: "train", True: "valid"}).to_json(orient="index"))
