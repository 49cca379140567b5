"""Per-customer drivers from the model's own behaviour, worded for a support lead.

Occlusion: each group of related features (everything about billing, the NPS answers, the
tickets...) is set to a typical retained customer's values (``ChurnModel.reference_``); the change
in the model's risk log-odds is that group's contribution. Only groups that raise risk and state
a fact become reasons, written from the customer's own feature values (what happened, not what
the model is), each with its evidence (:mod:`churn.evidence`).
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
    "churn_intent": ("churn_intent", "churn_intent_score", "days_since_churn_intent"),
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


def _day(value) -> str:
    return f" ({_n(value)} days ago)" if not _missing(value) else ""


def describe(group: str, row: pd.Series, window_days: int) -> str | None:
    """One plain sentence stating a risk-raising fact about ``group``, or None when there is none.

    Absences, missing data and unknown values are never reasons: "no tickets", "segment
    unknown" or a promoter score return None.
    """
    recent = f"in the last {window_days} days"
    get = row.get
    if group.startswith("reason:"):
        reason = group.split(":", 1)[1]
        label = reason.replace("_", " ")
        detractor, picked = get(f"detractor_{reason}", 0) or 0, get(f"picked_{reason}", 0) or 0
        texts = get(f"text_{reason}")
        parts = []
        if detractor > 0:
            parts.append(f"{_plural(_n(detractor), 'detractor answer')} citing {label} {recent}")
        elif picked > 0:
            parts.append(f"{_plural(_n(picked), 'survey answer')} citing {label} {recent}")
        if not _missing(texts) and texts > 0:
            parts.append(f"{label} raised in {_plural(_n(texts), 'message')} {recent}")
        return " and ".join(parts) or None
    if group == "nps":
        latest, detractors, trend = get("nps_latest"), get("detractor_answers", 0) or 0, get("nps_trend")
        dropped = not _missing(trend) and trend <= -2
        if _missing(latest) or (latest >= 9 and not dropped):
            return None
        kind = "detractor" if latest <= 6 else "passive" if latest <= 8 else "promoter"
        text = (f"{_plural(_n(detractors), 'detractor answer')} {recent} (latest NPS {_n(latest)})"
                if detractors > 0 else f"latest NPS {_n(latest)} ({kind})")
        return text + (f", down {abs(trend):.0f} points on earlier answers" if dropped else "")
    if group == "effort":
        latest = get("ces_latest")
        return None if _missing(latest) or latest <= 3 else f"high effort reported (CES {_n(latest)} of 7)"
    if group == "satisfaction":
        latest = get("csat_latest")
        return None if _missing(latest) or latest >= 4 else f"CSAT {_n(latest)} of 5 in the latest answer"
    if group == "tickets":
        count = _n(get("tickets", 0) or 0)
        if count == 0:
            return None
        text = f"{_plural(count, 'support ticket')} {recent}"
        reopens, frt = _n(get("reopens", 0) or 0), get("frt_hours")
        if reopens:
            text += f", reopened {_plural(reopens, 'time')}"
        if not _missing(frt) and frt >= 24:
            text += f", first response after {frt:.0f} hours on average"
        return text
    if group == "open_tickets":
        count = _n(get("open_tickets", 0) or 0)
        return _plural(count, "unresolved ticket") if count else None
    if group == "sentiment":
        negative = get("negative_texts")
        return f"{_plural(_n(negative), 'negative message')} {recent}" if not _missing(negative) and negative > 0 else None
    if group == "churn_intent":
        said, score = get("churn_intent"), get("churn_intent_score")
        if (not _missing(said) and said > 0) or (not _missing(score) and score >= 0.5):
            return "said they want to leave" + _day(get("days_since_churn_intent"))
        return None
    if group == "competitor_mentions":
        count = get("competitor_mentions")
        if _missing(count) or count <= 0:
            return None
        return "mentioned a competitor" if count == 1 else f"mentioned competitors in {_n(count)} messages {recent}"
    value = get(group)
    if _missing(value):
        return None
    if group == "tenure_days":
        return f"customer for {_n(value)} days" if value < 60 else f"customer for {value / 30.4:.0f} months"
    if group == "feedback_events":
        return f"{_plural(_n(value), 'feedback message')} {recent}"
    if group == "plan":
        return f"on the {value} plan"
    shown = f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)
    return f"{group.replace('_', ' ')} {shown}"


def explain(model, features: pd.DataFrame, *, top: int = 5, window_days: int | None = None,
            contribution_table: pd.DataFrame | None = None, evidence=None) -> list[list[dict]]:
    """Per customer, up to ``top`` risk-raising reasons by size: ``kind``, ``contribution``, ``text``, ``evidence``.

    Only groups that raise risk and state a fact (:func:`describe`) are kept. ``evidence`` is a
    :class:`churn.evidence.Evidence` (None: empty evidence); ``kind`` is the feature group.
    """
    window_days = window_days or getattr(model, "window_days", 90)
    table = contribution_table if contribution_table is not None else contributions(model, features)
    values = table.to_numpy()
    out = []
    for i in range(len(features)):
        row = features.iloc[i]
        drivers = []
        for j in np.argsort(-values[i], kind="stable"):
            size = float(values[i, j])
            if size < MIN_CONTRIBUTION or len(drivers) == top:
                break
            group = table.columns[j]
            text = describe(group, row, window_days)
            if text is None:
                continue
            found = evidence(str(features.index[i]), group) if evidence is not None else {}
            drivers.append({"kind": group, "contribution": round(size, 4), "text": text, "evidence": found})
        out.append(drivers)
    return out
