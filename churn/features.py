"""Point-in-time features: what was known strictly before a cutoff, and churn within a horizon after it.

Leakage is impossible by construction: :func:`as_of` first cuts every table at the cutoff
(events at or after it dropped, ticket responses and resolutions after it treated as not yet
happened, customers already gone or not yet signed up removed) and :func:`build_features`
only ever sees that :class:`PointInTime` view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.schema import ChurnTables, naive_utc

CATEGORICAL = ("region", "product", "plan", "segment")
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class PointInTime:
    """The tables as they stood just before ``cutoff``; the only thing features are computed from."""

    cutoff: pd.Timestamp
    customers: pd.DataFrame
    feedback: pd.DataFrame
    tickets: pd.DataFrame


def as_of(tables: ChurnTables, cutoff) -> PointInTime:
    """Filter first: keep customers active at ``cutoff`` and only what happened before it."""
    cutoff = naive_utc(cutoff)
    gone = tables.outcomes.loc[tables.outcomes["churned_at"] < cutoff, "customer_id"]
    customers = tables.customers[(tables.customers["signup_date"] < cutoff)
                                 & ~tables.customers["customer_id"].isin(gone)]
    feedback = tables.feedback[tables.feedback["timestamp"] < cutoff]
    tickets = tables.tickets[tables.tickets["opened_at"] < cutoff].copy()
    for column in ("first_response_at", "resolved_at"):
        tickets.loc[tickets[column] >= cutoff, column] = pd.NaT
    return PointInTime(cutoff, customers.reset_index(drop=True), feedback.reset_index(drop=True),
                       tickets.reset_index(drop=True))


def text_feature_names(reason_ids: Iterable[str]) -> list[str]:
    """Features that exist only because text was analysed (dropped for the no-text comparison)."""
    return [f"text_{r}" for r in reason_ids] + [
        "sentiment_mean", "sentiment_latest", "sentiment_trend", "negative_texts",
        "churn_intent", "churn_intent_score", "days_since_churn_intent", "competitor_mentions",
    ]


def cold_start_columns(reason_ids: Sequence[str]) -> list[str]:
    """The signals any CX lead would rank by, for a model trained before real outcomes exist.

    No segments, tenure, revenue or activity counts: on another population their meaning (and
    whether they are recorded at all) differs from the simulator's. No days since churn intent:
    missing for everyone who never said it, it cannot be held monotone.
    """
    scores = ["nps_latest", "nps_mean", "nps_trend", "detractor_answers", "promoter_answers", "days_since_nps",
              "ces_latest", "ces_mean", "csat_latest", "csat_mean"]
    reasons = [f"{kind}_{r}" for kind in ("picked", "detractor", "text") for r in reason_ids]
    tickets = ["tickets", "open_tickets", "reopens", "frt_hours", "art_hours", "fcr_rate"]
    text = ["sentiment_mean", "sentiment_latest", "sentiment_trend", "negative_texts", "churn_intent",
            "churn_intent_score", "competitor_mentions"]
    return scores + reasons + tickets + text


RISE_WITH = ("detractor_answers", "ces_latest", "ces_mean", "tickets", "open_tickets", "reopens", "frt_hours",
             "art_hours", "negative_texts", "churn_intent", "churn_intent_score", "competitor_mentions")
FALL_WITH = ("nps_latest", "nps_mean", "nps_trend", "promoter_answers", "csat_latest", "csat_mean", "fcr_rate",
             "sentiment_mean", "sentiment_latest", "sentiment_trend", "days_since_churn_intent")


def risk_direction(column: str) -> int:
    """+1 where more of the feature can only mean more risk, -1 where less, 0 where unknown."""
    if column in RISE_WITH or column.startswith(("picked_", "detractor_", "text_")):
        return 1
    return -1 if column in FALL_WITH else 0


def feature_names(reason_ids: Sequence[str], categorical: Iterable[str] = CATEGORICAL) -> list[str]:
    """Column order of :func:`build_features` for a taxonomy."""
    numeric = [
        "tenure_days", "revenue", "feedback_events",
        "nps_latest", "nps_mean", "nps_trend", "nps_answers", "detractor_answers",
        "promoter_answers", "days_since_nps", "ces_latest", "ces_mean", "csat_latest", "csat_mean",
    ]
    numeric += [f"picked_{r}" for r in reason_ids] + [f"detractor_{r}" for r in reason_ids]
    numeric += [f"days_since_{r}" for r in reason_ids]
    numeric += ["tickets", "open_tickets", "reopens", "frt_hours", "art_hours", "fcr_rate"]
    return list(categorical) + numeric + text_feature_names(reason_ids)


def build_features(view: PointInTime, reason_ids: Sequence[str], window_days: int = 90) -> pd.DataFrame:
    """One row per active customer (index ``customer_id``); ``window_days`` bounds counts and means."""
    cutoff, ids = view.cutoff, pd.Index(view.customers["customer_id"], name="customer_id")
    start = cutoff - window_days * DAY
    out = pd.DataFrame(index=ids)
    for column in CATEGORICAL:
        values = view.customers[column] if column in view.customers else pd.Series(None, index=view.customers.index)
        out[column] = [None if v is None or v != v else str(v) for v in values]
    out["tenure_days"] = ((cutoff - view.customers["signup_date"]) / DAY).to_numpy()
    out["revenue"] = view.customers["revenue"].to_numpy(dtype=float)

    events = view.feedback[view.feedback["customer_id"].isin(ids)]
    recent = events[events["timestamp"] >= start]
    out["feedback_events"] = _count(recent, ids)
    _score_features(out, events, recent, cutoff, ids)
    _reason_features(out, events, recent, cutoff, ids, reason_ids)
    _text_features(out, events, start, cutoff, ids, reason_ids)
    _ticket_features(out, view.tickets[view.tickets["customer_id"].isin(ids)], start, cutoff, ids)
    return out[feature_names(reason_ids)]


def _count(frame: pd.DataFrame, ids: pd.Index, mask=None) -> np.ndarray:
    rows = frame if mask is None else frame[np.asarray(mask, dtype=bool)]
    return rows.groupby("customer_id").size().reindex(ids, fill_value=0).to_numpy(dtype=float)


def _per_customer(values: pd.Series, frame: pd.DataFrame, ids: pd.Index, how: str) -> np.ndarray:
    return values.groupby(frame["customer_id"]).agg(how).reindex(ids).to_numpy(dtype=float)


def _latest(frame: pd.DataFrame, column: str, ids: pd.Index) -> np.ndarray:
    rows = frame.loc[frame[column].notna(), ["customer_id", "timestamp", column]]
    rows = rows.sort_values("timestamp", kind="stable").drop_duplicates("customer_id", keep="last")
    return rows.set_index("customer_id")[column].reindex(ids).to_numpy(dtype=float)


def _days_since(frame: pd.DataFrame, mask, cutoff, ids: pd.Index) -> np.ndarray:
    rows = frame[np.asarray(mask, dtype=bool)]
    last = rows.groupby("customer_id")["timestamp"].max().reindex(ids)
    return ((cutoff - last) / DAY).to_numpy(dtype=float)


def _score_features(out, events, recent, cutoff, ids) -> None:
    out["nps_latest"] = _latest(events, "nps", ids)
    out["nps_mean"] = _per_customer(recent["nps"], recent, ids, "mean")
    earlier = events[events["nps"].notna()].sort_values("timestamp", kind="stable")
    earlier = earlier[earlier.duplicated("customer_id", keep="last")]
    out["nps_trend"] = out["nps_latest"] - _per_customer(earlier["nps"], earlier, ids, "mean")
    out["nps_answers"] = _count(recent, ids, recent["nps"].notna())
    out["detractor_answers"] = _count(recent, ids, recent["nps"] <= 6)
    out["promoter_answers"] = _count(recent, ids, recent["nps"] >= 9)
    out["days_since_nps"] = _days_since(events, events["nps"].notna(), cutoff, ids)
    for score in ("ces", "csat"):
        out[f"{score}_latest"] = _latest(events, score, ids)
        out[f"{score}_mean"] = _per_customer(recent[score], recent, ids, "mean")


def _mentions(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    lists = frame[column].map(lambda cell: cell if cell else ())
    long = pd.DataFrame({"customer_id": frame["customer_id"].to_numpy(), "reason": lists.to_numpy(),
                         "timestamp": frame["timestamp"].to_numpy(), "nps": frame["nps"].to_numpy()})
    return long.explode("reason").dropna(subset=["reason"])


def _reason_features(out, events, recent, cutoff, ids, reason_ids) -> None:
    picked_all = _mentions(events, "reasons")
    picked = _mentions(recent, "reasons")
    counts = picked.groupby(["customer_id", "reason"]).size().unstack(fill_value=0)
    detractors = picked[picked["nps"] <= 6].groupby(["customer_id", "reason"]).size().unstack(fill_value=0)
    last = picked_all.groupby(["customer_id", "reason"])["timestamp"].max().unstack()
    for r in reason_ids:
        out[f"picked_{r}"] = _column(counts, r, ids, 0.0)
        out[f"detractor_{r}"] = _column(detractors, r, ids, 0.0)
        since = (cutoff - pd.to_datetime(_column(last, r, ids, np.nan))) / DAY
        out[f"days_since_{r}"] = np.asarray(since, dtype=float)


def _column(table: pd.DataFrame, column: str, ids: pd.Index, fill) -> np.ndarray:
    if column not in table.columns:
        return np.full(len(ids), fill, dtype=object if fill is np.nan else float)
    return table[column].reindex(ids, fill_value=fill).to_numpy()


def _text_features(out, events, start, cutoff, ids, reason_ids) -> None:
    """Text-analysis results; counts and the highest churn-intent score (0 without a scored message in
    the window) are NaN where that analysis never ran (a head was missing)."""
    recent = events[events["timestamp"] >= start]
    # astype(bool): an empty window maps to an object Series, which pandas would read as column labels.
    analysed = recent[recent["text_reasons"].map(lambda cell: cell is not None).astype(bool)]
    tagged = _mentions(analysed, "text_reasons").groupby(["customer_id", "reason"]).size().unstack(fill_value=0)
    tags_ran = events["text_reasons"].map(lambda cell: cell is not None).any()
    for r in reason_ids:
        out[f"text_{r}"] = _column(tagged, r, ids, 0.0).astype(float) if tags_ran else np.nan
    scored = events[events["sentiment_score"].notna()]
    scored_recent = scored[scored["timestamp"] >= start]
    out["sentiment_mean"] = _per_customer(scored_recent["sentiment_score"], scored_recent, ids, "mean")
    out["sentiment_latest"] = _latest(scored, "sentiment_score", ids)
    before = scored[scored["timestamp"] < start]
    out["sentiment_trend"] = out["sentiment_mean"] - _per_customer(before["sentiment_score"], before, ids, "mean")
    out["negative_texts"] = _analysed_count(scored_recent, scored_recent["sentiment_score"] < -0.3,
                                            len(scored) > 0, ids)
    intent = events[events["churn_intent"].notna()]
    recent_intent = intent[intent["timestamp"] >= start]
    out["churn_intent"] = _analysed_count(recent_intent, recent_intent["churn_intent"] > 0, len(intent) > 0, ids)
    scored_intent = recent[recent["churn_intent_score"].notna()]
    highest = _per_customer(scored_intent["churn_intent_score"], scored_intent, ids, "max")
    ran = events["churn_intent_score"].notna().any()
    out["churn_intent_score"] = np.nan_to_num(highest, nan=0.0) if ran else np.full(len(ids), np.nan)
    out["days_since_churn_intent"] = _days_since(intent, intent["churn_intent"] > 0, cutoff, ids)
    named = events[events["competitors"].map(lambda cell: cell is not None).astype(bool)]
    recent_named = named[named["timestamp"] >= start]
    out["competitor_mentions"] = _analysed_count(recent_named, recent_named["competitors"].map(len) > 0,
                                                 len(named) > 0, ids)


def _analysed_count(frame: pd.DataFrame, flags: pd.Series, ran: bool, ids: pd.Index) -> np.ndarray:
    """Count of true flags per customer; all NaN when this analysis never ran."""
    if not ran:
        return np.full(len(ids), np.nan)
    return _count(frame, ids, flags)


def _ticket_features(out, tickets, start, cutoff, ids) -> None:
    recent = tickets[tickets["opened_at"] >= start]
    out["tickets"] = _count(recent, ids)
    out["open_tickets"] = _count(tickets, ids, tickets["resolved_at"].isna())
    out["reopens"] = _per_customer(recent["reopened"].astype(float), recent, ids, "sum")
    out["reopens"] = out["reopens"].fillna(0.0)
    frt = (recent["first_response_at"] - recent["opened_at"]) / pd.Timedelta(hours=1)
    art = (recent["resolved_at"] - recent["opened_at"]) / pd.Timedelta(hours=1)
    out["frt_hours"] = _per_customer(frt, recent, ids, "mean")
    out["art_hours"] = _per_customer(art, recent, ids, "mean")
    resolved = recent[recent["resolved_at"].notna()]
    out["fcr_rate"] = _per_customer((resolved["reopened"] == 0).astype(float), resolved, ids, "mean")


def labels(tables: ChurnTables, customer_ids: Iterable[str], cutoff, horizon_days: int) -> pd.Series:
    """1 where the customer churned in ``[cutoff, cutoff + horizon)``, else 0."""
    cutoff = naive_utc(cutoff)
    churned = tables.outcomes.set_index("customer_id")["churned_at"].reindex(pd.Index(customer_ids))
    label = (churned >= cutoff) & (churned < cutoff + horizon_days * DAY)
    return label.astype(int).rename("churned")


def training_frame(tables: ChurnTables, cutoffs: Iterable, reason_ids: Sequence[str], *,
                   horizon_days: int = 90, window_days: int = 90,
                   observed_until=None) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features and labels stacked over several cutoffs; the third item is each row's cutoff.

    ``observed_until`` (the last day outcomes are known) rejects cutoffs whose horizon runs past it.
    """
    frames, ys, when = [], [], []
    for cutoff in cutoffs:
        cutoff = naive_utc(cutoff)
        if observed_until is not None and cutoff + horizon_days * DAY > naive_utc(observed_until):
            raise ValueError(f"cutoff {cutoff.date()} + {horizon_days} days runs past the observed "
                             f"outcomes ({naive_utc(observed_until).date()}): labels would be incomplete")
        x = build_features(as_of(tables, cutoff), reason_ids, window_days)
        frames.append(x)
        ys.append(labels(tables, x.index, cutoff, horizon_days))
        when.append(pd.Series(cutoff, index=x.index, name="cutoff"))
    return pd.concat(frames), pd.concat(ys), pd.concat(when)
