"""A batch scoring job: chunks committed one by one to a work directory, then joined once.

Each finished chunk leaves a part file, its bad rows and a ``.done`` marker written last (all
atomically), so a job killed at any moment resumes at the first unfinished chunk and the joined
output holds every input row exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from api.batch.readers import BadRow, Chunk, InputError, Source, check_text_column, discover, iter_chunks
from api.batch.writers import OUTPUT_FORMATS, concat_jsonl, concat_parquet, encode_part
from nlp.analyzer import Analyzer
from nlp.results import Analysis

WORK_SUFFIX = ".cxm-parts"


class ChunkSink(Protocol):
    def prepare(self, chunk: Chunk) -> None:
        """Move rows the sink cannot take from ``chunk.rows`` to ``chunk.bad`` before scoring."""

    def store(self, chunk: Chunk, analyses: list[tuple[int, Analysis]]) -> None:
        """Persist the scored rows, given as (index into ``chunk.rows``, analysis); idempotent."""


@dataclass(frozen=True)
class JobConfig:
    input: Path
    output: Path
    text_column: str = "text"
    chunk_size: int = 1000
    max_chars: int = 10_000
    errors: Path | None = None
    """Bad rows as JSONL; default: next to the output, ``<output stem>.errors.jsonl``."""

    @property
    def format(self) -> str:
        fmt = OUTPUT_FORMATS.get(self.output.suffix.lower())
        if fmt is None:
            raise InputError(
                f"{self.output}: unsupported output format {self.output.suffix!r}; use .jsonl or .parquet"
            )
        return fmt

    @property
    def errors_path(self) -> Path:
        return self.errors or self.output.with_name(self.output.stem + ".errors.jsonl")

    @property
    def work_dir(self) -> Path:
        return self.output.with_name(self.output.name + WORK_SUFFIX)


@dataclass
class ChunkResult:
    index: int
    part: bytes
    bad: list[BadRow]
    scored: int
    rows: int
    weight: int
    analyses: list[tuple[int, Analysis]] = field(default_factory=list, repr=False)
    """(index into the chunk's good rows, analysis) of each scored row; kept in-process only."""


@dataclass
class Summary:
    read: int = 0
    scored: int = 0
    failed: int = 0
    chunks: int = 0
    resumed_chunks: int = 0
    complete: bool = False
    output: Path | None = None
    errors: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read, "scored": self.scored, "failed": self.failed, "chunks": self.chunks,
            "resumed_chunks": self.resumed_chunks, "complete": self.complete,
            "output": str(self.output) if self.output else None,
            "errors": str(self.errors) if self.errors else None,
        }


def score_chunk(chunk: Chunk, analyzer: Analyzer, text_column: str, fmt: str) -> ChunkResult:
    """Analyse the good rows of a chunk; rows the analyzer cannot handle join the bad rows."""
    results = analyzer.analyze([row[text_column] for row in chunk.rows]) if chunk.rows else []
    records, bad, analyses = [], list(chunk.bad), []
    for k, (row, number, line, result) in enumerate(
        zip(chunk.rows, chunk.row_numbers, chunk.line_numbers, results)
    ):
        if result.error is not None:
            bad.append(BadRow(chunk.task.path, number, line, f"analysis failed: {result.error}"))
        else:
            records.append({**row, **result.to_dict()})
            analyses.append((k, result))
    bad.sort(key=lambda b: b.row)
    return ChunkResult(
        chunk.task.index, encode_part(records, fmt), bad, len(records), chunk.task.n_rows,
        chunk.task.weight, analyses,
    )


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class WorkDir:
    """The committed chunks of one job, bound to the job's inputs and options by a fingerprint."""

    def __init__(self, config: JobConfig, sources: list[Source], extra: dict[str, Any] | None = None):
        self.config = config
        self.path = config.work_dir
        self.fingerprint = self._fingerprint(config, sources, extra or {})

    @staticmethod
    def _fingerprint(config: JobConfig, sources: list[Source], extra: dict[str, Any]) -> str:
        inputs = [(s.path, s.size, os.stat(s.path).st_mtime_ns) for s in sources]
        key = {
            "inputs": inputs, "text_column": config.text_column, "chunk_size": config.chunk_size,
            "max_chars": config.max_chars, "format": config.format, **extra,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

    def open(self, restart: bool) -> None:
        manifest = self.path / "manifest.json"
        if restart and self.path.exists():
            shutil.rmtree(self.path)
        if manifest.exists():
            found = json.loads(manifest.read_text())
            if found.get("fingerprint") != self.fingerprint:
                raise InputError(
                    f"{self.path} holds an unfinished job with other inputs or options;"
                    " rerun with the same arguments to resume it, or add --restart to discard it"
                )
            return
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(manifest, json.dumps({"fingerprint": self.fingerprint}).encode())

    def _name(self, index: int, kind: str) -> Path:
        return self.path / f"{index:09d}.{kind}"

    def done(self, index: int) -> dict[str, Any] | None:
        marker = self._name(index, "done.json")
        return json.loads(marker.read_text()) if marker.exists() else None

    def commit(self, result: ChunkResult) -> None:
        """Part and bad rows first, the marker last: a chunk without its marker is redone."""
        _atomic_write(self._name(result.index, f"part.{self.config.format}"), result.part)
        errors = "".join(json.dumps(b.to_dict(), ensure_ascii=False) + "\n" for b in result.bad)
        _atomic_write(self._name(result.index, "errors.jsonl"), errors.encode("utf-8"))
        counts = {"rows": result.rows, "scored": result.scored, "failed": len(result.bad), "weight": result.weight}
        _atomic_write(self._name(result.index, "done.json"), json.dumps(counts).encode())

    def assemble(self, n_chunks: int) -> None:
        """Join the parts in chunk order into the output (atomically), then drop the work directory."""
        missing = [i for i in range(n_chunks) if self.done(i) is None]
        if missing:
            raise RuntimeError(f"cannot assemble: chunks {missing[:10]} are not committed")
        output, errors = self.config.output, self.config.errors_path
        output.parent.mkdir(parents=True, exist_ok=True)
        errors.parent.mkdir(parents=True, exist_ok=True)
        parts = [self._name(i, f"part.{self.config.format}") for i in range(n_chunks)]
        tmp = output.with_name(f".{output.name}.tmp")
        if self.config.format == "parquet":
            concat_parquet(parts, tmp) if parts else concat_parquet_empty(tmp)
        else:
            concat_jsonl(parts, tmp)
        errors_tmp = errors.with_name(f".{errors.name}.tmp")
        concat_jsonl([self._name(i, "errors.jsonl") for i in range(n_chunks)], errors_tmp)
        os.replace(tmp, output)
        os.replace(errors_tmp, errors)
        shutil.rmtree(self.path)


def concat_parquet_empty(path: Path) -> None:
    import pyarrow.parquet as pq

    from api.batch.writers import analysis_schema

    pq.write_table(analysis_schema().empty_table(), path)


ProgressHook = Callable[[int, int, int], None]
"""Called with (rows, failed, weight) of each finished chunk, resumed or new."""


def plan(config: JobConfig) -> tuple[list[Source], Iterator[Chunk]]:
    """The job's inputs (checked up front) and its chunks, in a stable order."""
    _ = config.format
    exclude = (config.work_dir, config.output, config.errors_path)
    sources = discover(config.input, exclude=exclude)
    check_text_column(sources, config.text_column)
    return sources, iter_chunks(sources, config.text_column, config.chunk_size, config.max_chars)


def run_local(
    config: JobConfig,
    analyzer: Analyzer,
    *,
    restart: bool = False,
    max_chunks: int | None = None,
    progress: ProgressHook | None = None,
    sink: ChunkSink | None = None,
    work_extra: dict[str, Any] | None = None,
) -> Summary:
    """Score every chunk not yet committed; stop after ``max_chunks`` new ones (then resumable).

    A ``sink`` (e.g. the database) may reject rows before scoring and stores each scored chunk
    before it is committed, so a crash in between only repeats an idempotent write.
    """
    sources, chunks = plan(config)
    work = WorkDir(config, sources, work_extra)
    work.open(restart)

    def results() -> Iterator[ChunkResult | dict[str, Any]]:
        for chunk in chunks:
            done = work.done(chunk.task.index)
            if done is not None:
                yield done
            else:
                yield _scored(chunk)

    def _scored(chunk: Chunk) -> ChunkResult:
        if sink is not None:
            sink.prepare(chunk)
        result = score_chunk(chunk, analyzer, config.text_column, config.format)
        if sink is not None:
            sink.store(chunk, result.analyses)
        return result

    return drive(work, results(), max_chunks=max_chunks, progress=progress)


def drive(
    work: WorkDir,
    results: Iterable[ChunkResult | dict[str, Any]],
    *,
    max_chunks: int | None,
    progress: ProgressHook | None,
    n_chunks: int | None = None,
) -> Summary:
    """Commit fresh results, count resumed ones, and assemble when every chunk is in."""
    summary = Summary()
    fresh = 0
    for result in results:
        if isinstance(result, dict):
            counts = result
            summary.resumed_chunks += 1
        else:
            work.commit(result)
            fresh += 1
            counts = {"rows": result.rows, "scored": result.scored, "failed": len(result.bad), "weight": result.weight}
        summary.chunks += 1
        summary.read += counts["rows"]
        summary.scored += counts["scored"]
        summary.failed += counts["failed"]
        if progress is not None:
            progress(counts["rows"], counts["failed"], counts["weight"])
        if max_chunks is not None and fresh >= max_chunks:
            return summary
    work.assemble(n_chunks if n_chunks is not None else summary.chunks)
    summary.complete = True
    summary.output, summary.errors = work.config.output, work.config.errors_path
    return summary
