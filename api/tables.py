"""Read feedback tables (CSV, JSONL, Parquet) and write analysis results as JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

SUPPORTED = (".csv", ".jsonl", ".json", ".parquet")


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
            frame = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one JSON object per line; returns the number written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps({k: _jsonable(v) for k, v in record.items()}, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n
