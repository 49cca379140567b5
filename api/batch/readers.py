"""Stream CSV, JSONL and Parquet inputs in chunks, reporting bad rows instead of dropping them.

A chunk is described by a :class:`ChunkTask` (file, offset, first row number, row count), so a
worker anywhere can re-read exactly the same rows that the planner saw.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_SURROGATE = re.compile("[\udc80-\udcff]")


class InputError(ValueError):
    """An input cannot be used at all (as opposed to a bad row); the message says why."""


@dataclass(frozen=True)
class Source:
    path: str
    format: str
    size: int
    columns: tuple[str, ...] | None
    """Header (CSV) or schema names (Parquet); JSONL rows carry their own keys."""
    rows: int | None = None
    """Row count when the format records it (Parquet)."""


@dataclass(frozen=True)
class ChunkTask:
    index: int
    path: str
    format: str
    start: int
    """Byte offset of the first record (CSV/JSONL) or its row offset (Parquet)."""
    first_row: int
    first_line: int
    n_rows: int
    weight: int
    """Approximate input bytes this chunk covers, for progress and ETA."""
    columns: tuple[str, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkTask:
        columns = data.get("columns")
        return cls(**{**data, "columns": tuple(columns) if columns is not None else None})


@dataclass(frozen=True)
class BadRow:
    source: str
    row: int
    """1-based record number in its file (the CSV header is not a record)."""
    line: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Chunk:
    task: ChunkTask
    rows: list[dict[str, Any]]
    row_numbers: list[int]
    line_numbers: list[int | None]
    bad: list[BadRow]


@dataclass(frozen=True)
class _Record:
    row: int
    line: int | None
    start: int
    end: int
    values: dict[str, Any] | None
    reason: str | None


def discover(path: str | Path, exclude: tuple[Path, ...] = ()) -> list[Source]:
    """The input files of a job in a stable order; a directory is searched recursively."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        excluded = {p.resolve() for p in exclude}
        files = []
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).parts
            if not p.is_file() or any(part.startswith((".", "_")) for part in rel):
                continue
            if p.resolve() in excluded or any(e in p.resolve().parents for e in excluded):
                continue
            files.append(p)
        unsupported = [str(p) for p in files if p.suffix.lower() not in FORMATS]
        if unsupported:
            raise InputError(
                f"unsupported files in {path}: {', '.join(unsupported[:5])}"
                f" (supported: {', '.join(FORMATS)}; hidden and _-prefixed files are ignored)"
            )
        if not files:
            raise InputError(f"{path}: no input files")
    else:
        raise InputError(f"{path}: no such file or directory")
    return [describe(p) for p in files]


def describe(path: Path) -> Source:
    """Format, size and columns of one input file; an unusable file raises :class:`InputError`."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    size = path.stat().st_size
    if fmt == "csv":
        return Source(str(path), fmt, size, _csv_header(path))
    if fmt == "parquet":
        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises several types for a damaged footer
            raise InputError(f"{path}: cannot read as Parquet: {exc}") from exc
        return Source(str(path), fmt, size, tuple(meta.schema.to_arrow_schema().names), meta.num_rows)
    return Source(str(path), fmt, size, None)


def check_text_column(sources: list[Source], text_column: str) -> None:
    """Fail before any work when a whole file lacks the text column."""
    for src in sources:
        if src.columns is not None and text_column not in src.columns:
            raise InputError(
                f"{src.path}: no {text_column!r} column (columns: {', '.join(src.columns)});"
                " choose one with --text-column"
            )


def _csv_header(path: Path) -> tuple[str, ...]:
    with path.open("rb") as fh:
        for record in _csv_records(fh, None, 0, 0, 0):
            if record.reason is not None:
                raise InputError(f"{path}: unreadable CSV header: {record.reason}")
            header = tuple(record.values["fields"])
            return (header[0].removeprefix("\ufeff"),) + header[1:]
    raise InputError(f"{path}: empty CSV file (no header)")


def _csv_records(fh, columns, row, line, pos) -> Iterator[_Record]:
    """CSV records from byte ``pos`` (after ``row`` records and ``line`` lines).

    Undecodable bytes survive as surrogates so the row can be reported, not lost.
    """
    state = {"pos": pos, "line": line}

    def lines():
        for raw in fh:
            state["pos"] += len(raw)
            state["line"] += 1
            yield raw.decode("utf-8", "surrogateescape")

    reader = csv.reader(lines(), strict=True)
    while True:
        start, start_line = state["pos"], state["line"] + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row += 1
            span = f"lines {start_line}-{state['line']}" if state["line"] > start_line else f"line {start_line}"
            yield _Record(row, start_line, start, state["pos"], None, f"broken CSV quoting ({exc}; {span})")
            continue
        if not fields:
            continue
        row += 1
        if columns is None:
            yield _Record(row, start_line, start, state["pos"], {"fields": fields}, None)
        elif len(fields) != len(columns):
            reason = f"expected {len(columns)} fields, found {len(fields)} (broken CSV quoting?)"
            yield _Record(row, start_line, start, state["pos"], None, reason)
        elif any(_SURROGATE.search(f) for f in fields):
            yield _Record(row, start_line, start, state["pos"], None, "undecodable bytes (not UTF-8)")
        else:
            yield _Record(row, start_line, start, state["pos"], dict(zip(columns, fields)), None)


def max_line_bytes(max_chars: int) -> int:
    """The longest JSONL line read: a text of ``max_chars`` escaped in full (up to 12 bytes a character)
    plus 1 MiB for the other fields. A longer line is a bad row and is never held in memory whole."""
    return 12 * max_chars + (1 << 20)


def _jsonl_records(fh, row, line, pos, max_bytes) -> Iterator[_Record]:
    while raw := fh.readline(max_bytes + 1):
        start = pos
        pos += len(raw)
        line += 1
        if len(raw) > max_bytes:
            while raw and not raw.endswith(b"\n"):
                raw = fh.readline(max_bytes + 1)
                pos += len(raw)
            row += 1
            yield _Record(row, line, start, pos, None, f"line longer than {max_bytes} bytes")
            continue
        if not raw.strip():
            continue
        row += 1
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield _Record(row, line, start, pos, None, f"undecodable bytes (not UTF-8, byte {exc.start})")
            continue
        except json.JSONDecodeError as exc:
            yield _Record(row, line, start, pos, None, f"invalid JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield _Record(row, line, start, pos, None, f"not a JSON object ({type(value).__name__})")
            continue
        yield _Record(row, line, start, pos, value, None)


def _parquet_records(path: str, start: int, batch_size: int) -> Iterator[_Record]:
    pf = pq.ParquetFile(path)
    first_group, skip = 0, start
    while first_group < pf.num_row_groups and skip >= pf.metadata.row_group(first_group).num_rows:
        skip -= pf.metadata.row_group(first_group).num_rows
        first_group += 1
    row = start
    groups = list(range(first_group, pf.num_row_groups))
    for batch in pf.iter_batches(batch_size=batch_size, row_groups=groups) if groups else ():
        try:
            values = batch.to_pylist()
        except UnicodeDecodeError:
            values = [_decode_row(batch.slice(i, 1)) for i in range(batch.num_rows)]
        for value in values[skip:]:
            row += 1
            reason = None if value is not None else "undecodable bytes (not UTF-8)"
            yield _Record(row, None, row - 1, row, value, reason)
        skip = max(0, skip - len(values))


def _decode_row(batch) -> dict[str, Any] | None:
    try:
        return batch.to_pylist()[0]
    except UnicodeDecodeError:
        return None


def _records(task_like: Source | ChunkTask, start: int, row: int, line: int, batch: int, max_chars: int):
    if task_like.format == "parquet":
        yield from _parquet_records(task_like.path, start, batch)
        return
    with open(task_like.path, "rb") as fh:
        fh.seek(start)
        if task_like.format == "csv":
            yield from _csv_records(fh, task_like.columns, row, line, start)
        else:
            yield from _jsonl_records(fh, row, line, start, max_line_bytes(max_chars))


def _validate(record: _Record, source: str, text_column: str, max_chars: int) -> BadRow | None:
    reason = record.reason
    if reason is None:
        text = record.values.get(text_column)
        if text_column not in record.values:
            reason = f"missing text column {text_column!r}"
        elif text is None or (isinstance(text, str) and not text.strip()):
            reason = "empty text"
        elif not isinstance(text, str):
            reason = f"text is not a string ({type(text).__name__})"
        elif len(text) > max_chars:
            reason = f"text longer than {max_chars} characters ({len(text)})"
    return BadRow(source, record.row, record.line, reason) if reason else None


def _chunk(index, src, records, text_column, max_chars, file_rows) -> Chunk:
    if src.format == "parquet":
        weight = round(src.size * len(records) / max(file_rows or 1, 1))
    else:
        weight = records[-1].end - records[0].start
    task = ChunkTask(
        index, src.path, src.format, records[0].start, records[0].row,
        records[0].line or 0, len(records), weight, src.columns,
    )
    chunk = Chunk(task, [], [], [], [])
    for record in records:
        bad = _validate(record, src.path, text_column, max_chars)
        if bad is not None:
            chunk.bad.append(bad)
        else:
            chunk.rows.append(record.values)
            chunk.row_numbers.append(record.row)
            chunk.line_numbers.append(record.line)
    return chunk


def iter_chunks(
    sources: list[Source], text_column: str, chunk_size: int, max_chars: int
) -> Iterator[Chunk]:
    """Every record of every source, ``chunk_size`` at a time; chunks never span files."""
    index = 0
    for src in sources:
        group: list[_Record] = []
        for record in source_records(src, max_chars, chunk_size):
            group.append(record)
            if len(group) == chunk_size:
                yield _chunk(index, src, group, text_column, max_chars, src.rows)
                index += 1
                group = []
        if group:
            yield _chunk(index, src, group, text_column, max_chars, src.rows)
            index += 1


def source_records(src: Source, max_chars: int, batch: int = 1024) -> Iterator[_Record]:
    """Every record of ``src`` in order (after a CSV header); a bad one carries its ``reason``."""
    _ensure_field_limit(max_chars)
    if src.format == "csv":
        with open(src.path, "rb") as fh:
            start, lines = _header_end(fh)
        return _records(src, start, 0, lines, batch, max_chars)
    return _records(src, 0, 0, 0, batch, max_chars)


def _ensure_field_limit(max_chars: int) -> None:
    """Let a legitimately long field through so it is reported as overlong, not as bad quoting."""
    if csv.field_size_limit() <= max_chars:
        csv.field_size_limit(max_chars * 2)


def _header_end(fh) -> tuple[int, int]:
    """Byte offset and line count just after the CSV header record."""
    for record in _csv_records(fh, None, 0, 0, 0):
        return record.end, _lines_in(fh, record.end)
    return 0, 0


def _lines_in(fh, end: int) -> int:
    fh.seek(0)
    return fh.read(end).count(b"\n")


def read_chunk(task: ChunkTask, text_column: str, max_chars: int) -> Chunk:
    """Re-read exactly the rows of ``task`` (what a remote worker does)."""
    src = Source(task.path, task.format, 0, task.columns)
    records = []
    _ensure_field_limit(max_chars)
    lines_before = max(task.first_line - 1, 0)
    for record in _records(src, task.start, task.first_row - 1, lines_before, task.n_rows, max_chars):
        records.append(record)
        if len(records) == task.n_rows:
            break
    if len(records) != task.n_rows:
        raise InputError(f"{task.path} changed while the job ran: chunk {task.index} is short")
    chunk = _chunk(task.index, src, records, text_column, max_chars, None)
    chunk.task = task
    return chunk
