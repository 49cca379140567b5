"""The four tables the churn model reads, validated once at the edge with errors naming row and column.

customers  customer_id, signup_date; optional region, product, plan, segment, revenue
feedback   customer_id, timestamp, channel, survey_type, nps (0-10), ces (1-7, 7 = most effort),
           csat (1-5), reasons (picked taxonomy ids), text; optional feedback_id (shown as evidence);
           optional text analysis: sentiment_score (-1..1), text_reasons (ids), churn_intent (bool),
           churn_intent_score (0..1, the text model's probability of a stated intent to leave), competitors (names)
tickets    customer_id, opened_at, first_response_at, resolved_at, reopened (count); optional ticket_id
outcomes   customer_id, churned_at (empty when still a customer)

Times are ISO 8601 (read as UTC when they carry no offset) and compared as naive UTC. List cells may be Python lists or strings separated by ';'. Text-analysis
cells left empty mean "not analysed" and stay missing (NaN / None), never zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

CHANNELS = ("survey", "social", "ticket", "chat", "review", "email")
SURVEY_TYPES = ("relational", "transactional", "in-the-moment")
CUSTOMER_SEGMENTS = ("region", "product", "plan", "segment")
TEXT_COLUMNS = ("sentiment_score", "text_reasons", "churn_intent", "churn_intent_score", "competitors")


class SchemaError(ValueError):
    """A table breaks the data contract; ``table``, ``row`` and ``column`` say where."""

    def __init__(self, table: str, column: str, message: str, row: int | None = None, more: int = 0):
        self.table, self.column, self.row = table, column, row
        where = f"{table}: row {row}, column {column!r}" if row is not None else f"{table}: column {column!r}"
        extra = f" ({more} more rows like it)" if more else ""
        super().__init__(f"{where}: {message}{extra}")


@dataclass(frozen=True)
class ChurnTables:
    """Validated, typed tables; build with :func:`validate_tables`."""

    customers: pd.DataFrame
    feedback: pd.DataFrame
    tickets: pd.DataFrame
    outcomes: pd.DataFrame

    def subset(self, customer_ids: Iterable[str]) -> ChurnTables:
        """Only these customers' rows in every table (e.g. to hold customers out of training)."""
        keep = set(customer_ids)
        return ChurnTables(*(frame[frame["customer_id"].isin(keep)].reset_index(drop=True)
                             for frame in (self.customers, self.feedback, self.tickets, self.outcomes)))


def _check(table: str, column: str, bad: pd.Series, message) -> None:
    """Raise for the first row where ``bad`` holds; ``message`` gets that row's position."""
    positions = np.flatnonzero(np.asarray(bad, dtype=bool))
    if positions.size:
        row = int(positions[0])
        text = message(row) if callable(message) else message
        raise SchemaError(table, column, text, row=row, more=int(positions.size - 1))


def _require(table: str, frame: pd.DataFrame, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(table, "*", f"expected a pandas DataFrame, got {type(frame).__name__}")
    for column in columns:
        if column not in frame.columns:
            have = ", ".join(map(str, frame.columns))
            raise SchemaError(table, column, f"missing required column (columns: {have})")


def _missing(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).str.strip().isin(["", "nan", "NaT", "None"])


def _ids(table: str, frame: pd.DataFrame) -> pd.Series:
    ids = frame["customer_id"]
    _check(table, "customer_id", _missing(ids), "empty customer_id")
    return ids.astype(str).str.strip()


def _times(table: str, frame: pd.DataFrame, column: str, as_of, required: bool) -> pd.Series:
    raw = frame[column] if column in frame.columns else pd.Series(pd.NaT, index=frame.index)
    empty = _missing(raw)
    parsed = pd.to_datetime(raw.where(~empty), errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    _check(table, column, parsed.isna() & ~empty, lambda r: f"not an ISO 8601 date/time: {raw.iloc[r]!r}")
    if required:
        _check(table, column, parsed.isna(), "missing date/time")
    if as_of is not None:
        _check(table, column, parsed > as_of, lambda r: f"{parsed.iloc[r]} is after as_of {as_of}")
    return parsed


def _numbers(table: str, frame: pd.DataFrame, column: str, low: float, high: float,
             integer: bool = False) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    raw = frame[column]
    empty = _missing(raw)
    values = pd.to_numeric(raw.where(~empty), errors="coerce").astype(float)
    _check(table, column, values.isna() & ~empty, lambda r: f"not a number: {raw.iloc[r]!r}")
    out_of_range = (values < low) | (values > high)
    if integer:
        out_of_range |= values.notna() & (values != np.round(values))
    kind = "an integer" if integer else "a number"
    _check(table, column, out_of_range,
           lambda r: f"{values.iloc[r]:g} is not {kind} in [{low:g}, {high:g}]")
    return values


def _lists(table: str, frame: pd.DataFrame, column: str, allowed: frozenset[str] | None,
           missing: tuple | None = ()) -> pd.Series:
    """Tuples of ids; an empty cell becomes ``missing`` (None for "text not analysed")."""
    if column not in frame.columns:
        return pd.Series([missing] * len(frame), index=frame.index, dtype=object)

    def parse(cell) -> tuple[str, ...] | None:
        if isinstance(cell, (list, tuple, np.ndarray)):
            return tuple(str(v).strip() for v in cell if str(v).strip())
        if cell is None or (isinstance(cell, float) and np.isnan(cell)) or not str(cell).strip():
            return missing
        if str(cell).strip().startswith("["):
            return parse(json.loads(str(cell)))
        return tuple(p.strip() for p in str(cell).split(";") if p.strip())

    values = pd.Series([parse(c) for c in frame[column]], index=frame.index, dtype=object)
    if allowed is not None:
        unknown = [next((v for v in cell or () if v not in allowed), None) for cell in values]
        bad = pd.Series([u is not None for u in unknown], index=frame.index)
        _check(table, column, bad, lambda r: f"unknown reason id {unknown[r]!r} "
               f"(taxonomy ids: {', '.join(sorted(allowed))})")
    return values


def _choices(table: str, frame: pd.DataFrame, column: str, allowed: tuple[str, ...],
             required: bool) -> pd.Series:
    raw = frame[column] if column in frame.columns else pd.Series(None, index=frame.index, dtype=object)
    empty = _missing(raw)
    values = raw.where(~empty).astype(object).map(lambda v: v if v is None or v != v else str(v).strip().lower())
    if required:
        _check(table, column, empty, "missing value")
    _check(table, column, ~empty & ~values.isin(allowed),
           lambda r: f"{raw.iloc[r]!r} is not one of {', '.join(allowed)}")
    return values.where(~empty, None)


def _known_customers(table: str, ids: pd.Series, known: pd.Series) -> None:
    _check(table, "customer_id", ~ids.isin(known),
           lambda r: f"customer {ids.iloc[r]!r} is not in the customers table")


def validate_customers(frame: pd.DataFrame, as_of=None) -> pd.DataFrame:
    _require("customers", frame, ["customer_id", "signup_date"])
    ids = _ids("customers", frame)
    _check("customers", "customer_id", ids.duplicated(), lambda r: f"duplicate customer {ids.iloc[r]!r}")
    out = pd.DataFrame({"customer_id": ids,
                        "signup_date": _times("customers", frame, "signup_date", as_of, True)})
    for column in CUSTOMER_SEGMENTS:
        if column in frame.columns:
            out[column] = frame[column].where(~_missing(frame[column])).astype(object)
    out["revenue"] = _numbers("customers", frame, "revenue", 0, np.inf)
    return out.reset_index(drop=True)


def validate_feedback(frame: pd.DataFrame, reason_ids: Iterable[str], customer_ids: pd.Series,
                      as_of=None) -> pd.DataFrame:
    """``reason_ids`` is the taxonomy the picked and text-tagged reasons must come from."""
    table, allowed = "feedback", frozenset(reason_ids)
    _require(table, frame, ["customer_id", "timestamp", "channel"])
    ids = _ids(table, frame)
    _known_customers(table, ids, customer_ids)
    out = pd.DataFrame({
        "customer_id": ids,
        "feedback_id": _labels(frame, "feedback_id"),
        "timestamp": _times(table, frame, "timestamp", as_of, True),
        "channel": _choices(table, frame, "channel", CHANNELS, True),
        "survey_type": _choices(table, frame, "survey_type", SURVEY_TYPES, False),
        "nps": _numbers(table, frame, "nps", 0, 10, integer=True),
        "ces": _numbers(table, frame, "ces", 1, 7, integer=True),
        "csat": _numbers(table, frame, "csat", 1, 5, integer=True),
        "reasons": _lists(table, frame, "reasons", allowed),
        "text": frame["text"].where(~_missing(frame["text"])).astype(object)
        if "text" in frame.columns else pd.Series(None, index=frame.index, dtype=object),
        "sentiment_score": _numbers(table, frame, "sentiment_score", -1, 1),
        "text_reasons": _lists(table, frame, "text_reasons", allowed, missing=None),
        "churn_intent": _flags(table, frame, "churn_intent"),
        "churn_intent_score": _numbers(table, frame, "churn_intent_score", 0, 1),
        "competitors": _lists(table, frame, "competitors", None, missing=None),
    })
    return out.reset_index(drop=True)


def _labels(frame: pd.DataFrame, column: str) -> pd.Series:
    """Optional free-form ids (None where absent)."""
    if column not in frame.columns:
        return pd.Series(None, index=frame.index, dtype=object)
    raw = frame[column]
    return raw.where(~_missing(raw)).astype(object).map(lambda v: None if v is None or v != v else str(v).strip())


def _flags(table: str, frame: pd.DataFrame, column: str) -> pd.Series:
    """Booleans with missing allowed (text not analysed); 'true'/'false'/1/0 accepted."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    raw = frame[column]
    empty = _missing(raw)
    mapping = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}
    values = raw.where(~empty).map(lambda v: mapping.get(str(v).strip().lower(), -1.0) if v == v and v is not None else np.nan)
    _check(table, column, values == -1.0, lambda r: f"not a boolean: {raw.iloc[r]!r}")
    return values.astype(float)


def validate_tickets(frame: pd.DataFrame, customer_ids: pd.Series, as_of=None) -> pd.DataFrame:
    table = "tickets"
    _require(table, frame, ["customer_id", "opened_at"])
    ids = _ids(table, frame)
    _known_customers(table, ids, customer_ids)
    opened = _times(table, frame, "opened_at", as_of, True)
    first = _times(table, frame, "first_response_at", as_of, False)
    resolved = _times(table, frame, "resolved_at", as_of, False)
    _check(table, "first_response_at", first < opened, "first response before the ticket was opened")
    _check(table, "resolved_at", resolved < opened, "resolved before the ticket was opened")
    reopened = _numbers(table, frame, "reopened", 0, np.inf, integer=True).fillna(0)
    out = pd.DataFrame({"customer_id": ids, "ticket_id": _labels(frame, "ticket_id"), "opened_at": opened,
                        "first_response_at": first, "resolved_at": resolved, "reopened": reopened.astype(int)})
    return out.reset_index(drop=True)


def validate_outcomes(frame: pd.DataFrame, customer_ids: pd.Series, as_of=None) -> pd.DataFrame:
    table = "outcomes"
    _require(table, frame, ["customer_id", "churned_at"])
    ids = _ids(table, frame)
    _known_customers(table, ids, customer_ids)
    _check(table, "customer_id", ids.duplicated(), lambda r: f"duplicate customer {ids.iloc[r]!r}")
    out = pd.DataFrame({"customer_id": ids,
                        "churned_at": _times(table, frame, "churned_at", as_of, False)})
    return out.reset_index(drop=True)


def naive_utc(moment) -> pd.Timestamp:
    """One convention for every time the model compares: naive UTC."""
    moment = pd.Timestamp(moment)
    return moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo is not None else moment


def validate_tables(customers: pd.DataFrame, feedback: pd.DataFrame, tickets: pd.DataFrame,
                    outcomes: pd.DataFrame, *, reason_ids: Iterable[str], as_of=None) -> ChurnTables:
    """Check and type all four tables; ``as_of`` (if given) rejects dates after it."""
    as_of = None if as_of is None else naive_utc(as_of)
    checked = validate_customers(customers, as_of)
    known = checked["customer_id"]
    return ChurnTables(
        customers=checked,
        feedback=validate_feedback(feedback, reason_ids, known, as_of),
        tickets=validate_tickets(tickets, known, as_of),
        outcomes=validate_outcomes(outcomes, known, as_of),
    )
