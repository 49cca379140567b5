"""Read feedback tables (CSV, JSONL, Parquet) and write analysis results as JSONL or safe CSV."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from api.json_safe import plain

SUPPORTED = (".csv", ".jsonl", ".json", ".parquet")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a CSV cell starting with one of these as a formula (CSV injection)."""


class TableError(ValueError):
    """A feedback file cannot be used; the message says why."""


def read_table(path: str | Path, text_column: str = "text") -> pd.DataFrame:
    """Load a feedback file as strings-preserving records; fails clearly without a text column."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
        elif suffix in (".jsonl", ".json"):
            frame = _read_json(path, lines=suffix == ".jsonl")
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise TableError(f"{path}: unsupported format {suffix!r}; use one of {SUPPORTED}")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        if isinstance(exc, TableError):
            raise
        raise TableError(f"{path}: cannot parse as {suffix[1:]}: {exc}") from exc
    if text_column not in frame.columns:
        raise TableError(
            f"{path}: no {text_column!r} column (columns: {', '.join(map(str, frame.columns))})"
        )
    return frame


def _read_json(path: Path, lines: bool) -> pd.DataFrame:
    """JSON records as Python objects: ids stay ints, dates stay strings (pandas would coerce both)."""
    with path.open(encoding="utf-8") as fh:
        if lines:
            records = []
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"line {number}: {exc}") from exc
        else:
            records = json.load(fh)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("expected JSON objects, one per record")
    return pd.DataFrame(records, dtype=object)


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one JSON object per line; returns the number written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(plain(record), ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


def _inert(value: Any) -> Any:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy to write as CSV: text cells and headers that a spreadsheet would run get a leading "'"."""
    return frame.map(_inert).rename(columns=_inert)
