"""Encode scored rows as JSONL or Parquet parts and join the parts into one output file.

Parts are encoded to bytes so a remote worker and the local engine produce identical files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import types
import typing
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from api.json_safe import finite, json_default
from nlp.results import Analysis

OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
ANALYSIS_FIELDS = tuple(f.name for f in dataclasses.fields(Analysis))
_SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_type(hint: Any) -> pa.DataType:
    """Arrow type of a result-dataclass annotation, so every Parquet part shares one schema."""
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return _SCALARS[type(args[0])]
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _arrow_type(inner)
    if origin is list or (origin is tuple and args[-1:] == (Ellipsis,)):
        return pa.list_(_arrow_type(args[0]))
    if origin is dict:
        return pa.map_(_arrow_type(args[0]), _arrow_type(args[1]))
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return pa.struct([(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(hint)])
    raise TypeError(f"no Arrow type for {hint!r}")


@lru_cache
def analysis_schema() -> pa.Schema:
    """Fixed types for the analysis fields; a field of a type Arrow cannot name is inferred."""
    hints = typing.get_type_hints(Analysis)
    fields = []
    for name in ANALYSIS_FIELDS:
        try:
            fields.append(pa.field(name, _arrow_type(hints[name])))
        except (TypeError, KeyError, ValueError):
            continue
    return pa.schema(fields)


def encode_jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    for record in records:
        clean = {k: finite(v) for k, v in record.items()}
        out.write(json.dumps(clean, ensure_ascii=False, default=json_default))
        out.write("\n")
    return out.getvalue().encode("utf-8")


def encode_parquet(records: list[dict[str, Any]]) -> bytes:
    """Input columns keep their inferred types; analysis columns get the fixed schema."""
    schema = analysis_schema()
    inputs = pa.Table.from_pylist(
        [{k: finite(v) for k, v in r.items() if k not in schema.names} for r in records]
    )
    analysis = pa.Table.from_pylist(
        [{k: r.get(k) for k in schema.names} for r in records], schema=schema
    )
    table = pa.Table.from_arrays(
        inputs.columns + analysis.columns, names=inputs.column_names + analysis.column_names
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def encode_part(records: list[dict[str, Any]], fmt: str) -> bytes:
    return encode_parquet(records) if fmt == "parquet" else encode_jsonl(records)


def concat_jsonl(parts: Iterable[Path], output: Path) -> None:
    with output.open("wb") as out:
        for part in parts:
            with part.open("rb") as fh:
                while block := fh.read(1 << 20):
                    out.write(block)


def _unified_schema(parts: list[Path]) -> pa.Schema:
    schemas = [pq.read_schema(p) for p in parts]
    try:
        merged = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(
            f"input columns change type between chunks ({exc}); write JSONL instead"
        ) from exc
    fixed = analysis_schema()
    inputs = [f for f in merged if f.name not in fixed.names]
    return pa.schema(inputs + list(fixed))


def concat_parquet(parts: list[Path], output: Path) -> None:
    """One row group per part, with the union of the parts' columns (missing ones null)."""
    schema = _unified_schema(parts)
    with pq.ParquetWriter(output, schema) as writer:
        for part in parts:
            table = pq.read_table(part)
            columns = [
                table[f.name].cast(f.type) if f.name in table.column_names
                else pa.nulls(table.num_rows, f.type)
                for f in schema
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
