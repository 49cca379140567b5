"""Per-customer drivers from the model's own behaviour, worded for a support lead.

Occlusion: each group of related features (everything about billing, the NPS answers, the
tickets...) is set to a typical retained customer's values (``ChurnModel.reference_``); the change
in the model's risk log-odds is that group's contribution. Sentences are written from the
customer's own feature values, so they say what happened, not what the model is.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

GROUPS = {
    "nps": ("nps_latest", "nps_mean", "nps_trend", "nps_answers", "detractor_answers",
            "promoter_answers", "days_since_nps"),
    "effort": ("ces_latest", "ces_mean"),
    "satisfaction": ("csat_latest", "csat_mean"),
    "tickets": ("tickets", "reopens", "frt_hours", "art_hours", "fcr_rate"),
    "open_tickets": ("open_tickets",),
    "sentiment": ("sentiment_mean", "sentiment_latest", "sentiment_trend", "negative_texts"),
    "churn_intent": ("churn_intent", "days_since_churn_intent"),
    "competitor_mentions": ("competitor_mentions",),
}
REASON_FEATURE = re.compile(r"^(picked|detractor|days_since|text)_(.+)$")
MIN_CONTRIBUTION = 0.02


def feature_groups(columns) -> dict[str, list[str]]:
    """Group name -> its columns; per-reason columns form ``reason:<id>``, the rest stand alone."""
    columns = list(columns)
    taken = {c for group in GROUPS.values() for c in group}
    groups = {name: [c for c in cols if c in columns] for name, cols in GROUPS.items()}
    for column in columns:
        if column in taken:
            continue
        match = REASON_FEATURE.match(column)
        if match:
            groups.setdefault(f"reason:{match.group(2)}", []).append(column)
        else:
            groups.setdefault(column, []).append(column)
    return {name: cols for name, cols in groups.items() if cols}


def contributions(model, features: pd.DataFrame, groups: dict[str, list[str]] | None = None,
                  chunk: int = 2000) -> pd.DataFrame:
    """Customers x groups: risk log-odds now minus with that group set to the reference values."""
    groups = groups or feature_groups(features.columns)
    names = list(groups)
    out = np.zeros((len(features), len(names)))
    reference = model.reference_
    for start in range(0, len(features), chunk):
        part = features.iloc[start:start + chunk].reset_index(drop=True)
        base = model.risk_score(part)
        copies, where = [], []
        for j, name in enumerate(names):
            rows = np.flatnonzero(_differs(part, groups[name], reference))
            if rows.size:
                copy = part.iloc[rows].copy()
                for column in groups[name]:
                    copy[column] = reference[column]
                copies.append(copy)
                where.append((j, rows))
        if copies:
            occluded = model.risk_score(pd.concat(copies, ignore_index=True))
            offset = 0
            for j, rows in where:
                out[start + rows, j] = base[rows] - occluded[offset:offset + rows.size]
                offset += rows.size
    return pd.DataFrame(out, index=features.index, columns=names)


def _differs(frame: pd.DataFrame, columns: list[str], reference: dict) -> np.ndarray:
    """Rows where any of ``columns`` differs from the reference (missing equals missing)."""
    differs = np.zeros(len(frame), dtype=bool)
    for column in columns:
        values, ref = frame[column], reference[column]
        if _missing(ref):
            differs |= values.notna().to_numpy()
        else:
            differs |= (values.isna() | (values != ref)).to_numpy()
    return differs


def _n(value) -> int:
    return int(round(float(value)))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def describe(group: str, row: pd.Series, window_days: int) -> str:
    """One plain sentence about ``group`` for this customer's feature values."""
    recent = f"in the last {window_days} days"
    get = row.get
    if group.startswith("reason:"):
        reason = group.split(":", 1)[1]
        label = reason.replace("_", " ")
        detractor, picked = get(f"detractor_{reason}", 0) or 0, get(f"picked_{reason}", 0) or 0
        texts, since = get(f"text_{reason}"), get(f"days_since_{reason}")
        parts = []
        if detractor > 0:
            parts.append(f"{_plural(_n(detractor), 'detractor answer')} citing {label} {recent}")
        elif picked > 0:
            parts.append(f"{_plural(_n(picked), 'survey answer')} citing {label} {recent}")
        if not _missing(texts) and texts > 0:
            parts.append(f"{label} raised in {_plural(_n(texts), 'message')} {recent}")
        if parts:
            return " and ".join(parts)
        if not _missing(since):
            return f"last cited {label} {_n(since)} days ago"
        return f"no complaints about {label}"
    if group == "nps":
        latest, detractors = get("nps_latest"), get("detractor_answers", 0) or 0
        if _missing(latest):
            return "no NPS answer on record"
        kind = "detractor" if latest <= 6 else "passive" if latest <= 8 else "promoter"
        text = (f"{_plural(_n(detractors), 'detractor answer')} {recent} (latest NPS {_n(latest)})"
                if detractors > 0 else f"latest NPS {_n(latest)} ({kind})")
        trend = get("nps_trend")
        if not _missing(trend) and abs(trend) >= 2:
            text += f", {'down' if trend < 0 else 'up'} {abs(trend):.0f} points on earlier answers"
        return text
    if group == "effort":
        latest = get("ces_latest")
        if _missing(latest):
            return "no effort (CES) score on record"
        return f"{'high' if latest >= 5 else 'low' if latest <= 2 else 'moderate'} effort reported (CES {_n(latest)} of 7)"
    if group == "satisfaction":
        latest = get("csat_latest")
        return "no CSAT score on record" if _missing(latest) else f"CSAT {_n(latest)} of 5 in the latest answer"
    if group == "tickets":
        count = _n(get("tickets", 0) or 0)
        if count == 0:
            return f"no support tickets {recent}"
        text = f"{_plural(count, 'support ticket')} {recent}"
        reopens, frt = _n(get("reopens", 0) or 0), get("frt_hours")
        if reopens:
            text += f", reopened {_plural(reopens, 'time')}"
        if not _missing(frt) and frt >= 24:
            text += f", first response after {frt:.0f} hours on average"
        return text
    if group == "open_tickets":
        count = _n(get("open_tickets", 0) or 0)
        return f"{_plural(count, 'unresolved ticket')}" if count else "no unresolved tickets"
    if group == "sentiment":
        negative, mean = get("negative_texts"), get("sentiment_mean")
        if not _missing(negative) and negative > 0:
            return f"{_plural(_n(negative), 'negative message')} {recent}"
        if not _missing(mean):
            return f"{'positive' if mean > 0.2 else 'neutral'} tone in messages {recent}"
        return f"no analysed messages {recent}"
    if group == "churn_intent":
        said, since = get("churn_intent"), get("days_since_churn_intent")
        if not _missing(said) and said > 0:
            return "said they want to leave" + (f" ({_n(since)} days ago)" if not _missing(since) else "")
        return "has not said they want to leave"
    if group == "competitor_mentions":
        count = get("competitor_mentions")
        if not _missing(count) and count > 0:
            return "said they are switching to a competitor" if count == 1 else \
                f"mentioned switching to a competitor {_n(count)} times {recent}"
        return "no competitor mentioned"
    value = get(group)
    if group == "tenure_days" and not _missing(value):
        return f"customer for {_n(value)} days" if value < 60 else f"customer for {value / 30.4:.0f} months"
    if group == "feedback_events" and not _missing(value):
        return f"{_plural(_n(value), 'feedback message')} {recent}"
    if group == "plan":
        return f"on the {value} plan"
    if _missing(value):
        return f"no {group.replace('_', ' ')} on record"
    shown = f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)
    return f"{group.replace('_', ' ')} {shown}"


def explain(model, features: pd.DataFrame, *, top: int = 5, window_days: int | None = None,
            contribution_table: pd.DataFrame | None = None) -> list[list[dict]]:
    """Per customer, up to ``top`` drivers by size: ``feature``, ``direction``, ``contribution``, ``text``."""
    window_days = window_days or getattr(model, "window_days", 90)
    table = contribution_table if contribution_table is not None else contributions(model, features)
    values = table.to_numpy()
    out = []
    for i in range(len(features)):
        row = features.iloc[i]
        order = np.argsort(-np.abs(values[i]), kind="stable")[:top]
        drivers = []
        for j in order:
            size = float(values[i, j])
            if abs(size) < MIN_CONTRIBUTION:
                break
            group = table.columns[j]
            drivers.append({"feature": group, "direction": "raises risk" if size > 0 else "lowers risk",
                            "contribution": round(size, 4), "text": describe(group, row, window_days)})
        out.append(drivers)
    return out
