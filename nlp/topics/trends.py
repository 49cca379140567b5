"""Topic trends and emerging topics over time, per segment: pure pandas, one row per document in.

Input: a DataFrame with ``timestamp``, ``topic_id``, ``topic_label``, optionally
``sentiment_score`` (numeric), and any segment columns (channel, journey stage, region...).
``topic_id`` -1 (no topic) counts in every share's denominator but is never "emerging".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special

from nlp.topics.config import OUTLIER

Period = Literal["day", "week", "month"]
PERIOD_FREQ = {"day": "D", "week": "W-SUN", "month": "M"}
REQUIRED = ("timestamp", "topic_id", "topic_label")


def _segments(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _prepare(frame: pd.DataFrame, period: str, by: list[str]) -> pd.DataFrame:
    if period not in PERIOD_FREQ:
        raise ValueError(f"period must be one of {sorted(PERIOD_FREQ)}, got {period!r}")
    missing = [c for c in (*REQUIRED, *by) if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; have {list(frame.columns)}")
    clash = {"period", "count", "share", "mean_sentiment"} & set(by)
    if clash:
        raise ValueError(f"segment column(s) {sorted(clash)} clash with output column names")
    out = frame.copy()
    try:
        stamps = pd.to_datetime(out["timestamp"], utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"timestamp column has values that are not dates: {exc}") from exc
    if stamps.isna().any():
        raise ValueError(f"{int(stamps.isna().sum())} rows have no timestamp")
    # Periods are calendar periods in UTC; weeks start on Monday.
    out["period"] = stamps.dt.tz_localize(None).dt.to_period(PERIOD_FREQ[period]).dt.start_time
    out["topic_id"] = pd.to_numeric(out["topic_id"], errors="raise").astype(int)
    if "sentiment_score" in out.columns:
        out["sentiment_score"] = pd.to_numeric(out["sentiment_score"], errors="coerce")
    else:
        out["sentiment_score"] = np.nan
    for column in by:
        out[column] = out[column].fillna("(missing)")
    return out


def topic_trends(
    frame: pd.DataFrame, period: Period = "week", by: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """Per period (and segment) and topic: ``count``, ``share`` of that period's documents, ``mean_sentiment``.

    Columns: period, *by, topic_id, topic_label, count, share, mean_sentiment (NaN without
    sentiment). Sorted by period, segment, then count descending.
    """
    by = _segments(by)
    data = _prepare(frame, period, by)
    keys = ["period", *by]
    columns = [*keys, "topic_id", "topic_label", "count", "share", "mean_sentiment"]
    if data.empty:
        return pd.DataFrame(columns=columns)
    labels = data.groupby("topic_id")["topic_label"].first()
    grouped = (
        data.groupby([*keys, "topic_id"], dropna=False)
        .agg(count=("topic_id", "size"), mean_sentiment=("sentiment_score", "mean"))
        .reset_index()
    )
    totals = data.groupby(keys, dropna=False).size().rename("total").reset_index()
    grouped = grouped.merge(totals, on=keys)
    grouped["share"] = grouped["count"] / grouped["total"]
    grouped["topic_label"] = grouped["topic_id"].map(labels)
    grouped = grouped.sort_values([*keys, "count", "topic_id"], ascending=[True] * len(keys) + [False, True])
    return grouped[columns].reset_index(drop=True)


def emerging_topics(
    frame: pd.DataFrame,
    period: Period = "month",
    *,
    baseline_periods: int = 3,
    min_count: int = 5,
    min_jump: float = 0.02,
    min_lift: float = 1.5,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Topics whose share in the latest period jumps above their own baseline, beyond chance.

    The baseline is the topic's mean share over up to ``baseline_periods`` earlier periods
    that have documents (a period without the topic counts as share 0). Flagged: at least
    ``min_count`` documents in the latest period, ``jump = share - baseline_share >= min_jump``,
    ``lift = share / baseline_share >= min_lift`` (inf for a topic new this period) and
    ``p_value < alpha``: a one-sided two-proportion z-test of the latest period's documents of the
    topic against the baseline periods' documents pooled (so 3 of 10 after 1 of 10 is no jump).
    Columns: topic_id, topic_label, period, count, share, baseline_share, jump, lift, p_value;
    largest jump first. Empty when there is no earlier period to compare with.
    """
    return flag_emerging(topic_trends(frame, period), baseline_periods=baseline_periods, min_count=min_count,
                         min_jump=min_jump, min_lift=min_lift, alpha=alpha)


def flag_emerging(
    trends: pd.DataFrame, *, baseline_periods: int = 3, min_count: int = 5, min_jump: float = 0.02,
    min_lift: float = 1.5, alpha: float = 0.05,
) -> pd.DataFrame:
    """:func:`emerging_topics` from a :func:`topic_trends` table (unsegmented: every topic of a
    period, so its counts sum to the period's documents), e.g. one counted by a database."""
    if baseline_periods < 1 or min_count < 1 or min_jump < 0 or min_lift < 1 or not 0 < alpha <= 1:
        raise ValueError("need baseline_periods >= 1, min_count >= 1, min_jump >= 0, min_lift >= 1, 0 < alpha <= 1")
    columns = ["topic_id", "topic_label", "period", "count", "share", "baseline_share", "jump", "lift", "p_value"]
    periods = sorted(trends["period"].unique())
    if len(periods) < 2:
        return pd.DataFrame(columns=columns)
    latest, baseline = periods[-1], periods[-1 - baseline_periods : -1]
    shares = trends.pivot_table(index="topic_id", columns="period", values="share", fill_value=0.0)
    counts = trends.pivot_table(index="topic_id", columns="period", values="count", fill_value=0)
    labels = trends.groupby("topic_id")["topic_label"].first()
    result = pd.DataFrame(
        {
            "topic_id": shares.index,
            "topic_label": labels.reindex(shares.index).to_numpy(),
            "period": latest,
            "count": counts[latest].astype(int).to_numpy(),
            "share": shares[latest].to_numpy(),
            "baseline_share": shares[baseline].mean(axis=1).to_numpy(),
        }
    )
    result["jump"] = result["share"] - result["baseline_share"]
    totals = counts.sum(axis=0)
    result["p_value"] = _excess_p_value(counts[latest].to_numpy(), int(totals[latest]),
                                        counts[baseline].sum(axis=1).to_numpy(), int(totals[baseline].sum()))
    with np.errstate(divide="ignore"):
        result["lift"] = np.where(
            result["baseline_share"] > 0, result["share"] / result["baseline_share"].where(result["baseline_share"] > 0, 1), np.inf
        )
    flagged = result[
        (result["topic_id"] != OUTLIER)
        & (result["count"] >= min_count)
        & (result["jump"] >= min_jump)
        & (result["lift"] >= min_lift)
        & (result["p_value"] < alpha)
    ]
    return flagged.sort_values("jump", ascending=False)[columns].reset_index(drop=True)


def _excess_p_value(count: np.ndarray, total: int, baseline_count: np.ndarray, baseline_total: int) -> np.ndarray:
    """One-sided p-values that each topic's share ``count / total`` exceeds its pooled baseline share
    ``baseline_count / baseline_total`` (two-proportion z-test with the pooled variance)."""
    pooled = (count + baseline_count) / (total + baseline_total)
    se = np.sqrt(pooled * (1 - pooled) * (1 / total + 1 / baseline_total))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (count / total - baseline_count / baseline_total) / se
    return np.where(se > 0, 0.5 * special.erfc(z / np.sqrt(2)), 1.0)
