"""Read feedback tables (CSV, JSONL, Parquet) and write analysis results as JSONL or safe CSV."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from api.batch.readers import InputError, describe, source_records
from api.json_safe import plain

SUPPORTED = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a CSV cell starting with one of these as a formula (CSV injection)."""


class TableError(ValueError):
    """A feedback file cannot be used; the message says why."""


READ_MAX_CHARS = 100_000
"""Longest text a whole-file read accepts in a JSONL line (sets the line cap, as in batch scoring)."""


def read_table(path: str | Path, text_column: str = "text") -> pd.DataFrame:
    """Load a feedback file whole, parsed by the batch readers (CSV and JSONL cells as written, Parquet
    as typed; a JSON array too). Fails clearly on a bad record or without ``text_column``."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise TableError(f"{path}: unsupported format {suffix!r}; use one of {SUPPORTED}")
    try:
        frame = _read_json_array(path) if suffix == ".json" else _read_records(path)
    except InputError as exc:
        raise TableError(str(exc)) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: cannot parse as {suffix[1:]}: {exc}") from exc
    if text_column not in frame.columns:
        raise TableError(
            f"{path}: no {text_column!r} column (columns: {', '.join(map(str, frame.columns))})"
        )
    return frame


def _read_records(path: Path) -> pd.DataFrame:
    source = describe(path)
    rows = []
    for record in source_records(source, READ_MAX_CHARS):
        if record.values is None:
            where = f" (line {record.line})" if record.line is not None else ""
            raise TableError(f"{path}: record {record.row}{where}: {record.reason}")
        rows.append(record.values)
    if source.format == "parquet":
        return pd.DataFrame(rows, columns=list(source.columns))
    # Objects, not inferred dtypes: JSON ids stay ints, dates stay strings, CSV cells stay strings.
    return pd.DataFrame(rows, columns=list(source.columns) if source.columns else None, dtype=object)


def _read_json_array(path: Path) -> pd.DataFrame:
    with path.open(encoding="utf-8") as fh:
        records = json.load(fh)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("expected a JSON array of objects, one per record")
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
