"""The same job on Ray Data: the driver plans chunks, an actor pool scores them, the driver commits.

Each actor builds the analyzer once from the library's :class:`nlp.pipeline.AnalyzerConfig` (model
paths and options, never the service's settings: no database URL reaches a worker); it re-reads
its chunk's rows from the shared input path, so only small chunk descriptions travel to workers and
encoded parts travel back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from api.batch.job import ChunkResult, JobConfig, ProgressHook, Summary, WorkDir, drive, plan, score_chunk
from api.batch.readers import BadRow, ChunkTask, read_chunk
from api.components import analyzer_config
from api.settings import Settings
from nlp.pipeline import AnalyzerConfig


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayUnavailable(
            "the Ray engine needs Ray Data: install cxm[ray] (pip install 'cxm[ray]')"
        ) from exc
    return ray


class ChunkScorer:
    """A Ray actor: loads the models once, then scores one chunk description per call."""

    def __init__(self, analyzer: AnalyzerConfig, text_column: str, max_chars: int, fmt: str):
        from nlp.analyzer import FeedbackAnalyzer

        self.analyzer = FeedbackAnalyzer.from_config(analyzer)
        self.text_column, self.max_chars, self.fmt = text_column, max_chars, fmt

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"index": [], "part": [], "bad": [], "scored": [], "rows": [], "weight": []}
        for raw in batch["task"]:
            task = ChunkTask.from_dict(json.loads(raw))
            result = score_chunk(read_chunk(task, self.text_column, self.max_chars), self.analyzer,
                                 self.text_column, self.fmt)
            out["index"].append(result.index)
            out["part"].append(result.part)
            out["bad"].append(json.dumps([b.to_dict() for b in result.bad]))
            out["scored"].append(result.scored)
            out["rows"].append(result.rows)
            out["weight"].append(result.weight)
        return out


def actor_kwargs(config: JobConfig, settings: Settings) -> dict[str, Any]:
    """What each :class:`ChunkScorer` is built from: the analyzer's config and the job's reading
    options only. Each actor holds one CPU, so it gets one thread unless the settings say otherwise."""
    return {"analyzer": replace(analyzer_config(settings), threads=settings.torch_threads or 1),
            "text_column": config.text_column, "max_chars": config.max_chars, "fmt": config.format}


def _results(batches) -> Iterator[ChunkResult]:
    for batch in batches:
        for i in range(len(batch["index"])):
            yield ChunkResult(
                int(batch["index"][i]), bytes(batch["part"][i]),
                [BadRow(**b) for b in json.loads(batch["bad"][i])],
                int(batch["scored"][i]), int(batch["rows"][i]), int(batch["weight"][i]),
            )


def run_ray(
    config: JobConfig,
    settings: Settings,
    *,
    address: str | None = None,
    workers: int | None = None,
    restart: bool = False,
    max_chunks: int | None = None,
    progress: ProgressHook | None = None,
) -> Summary:
    """Score the chunks not yet committed on Ray; commits, resume and output match the local engine."""
    ray = _import_ray()
    sources, chunks = plan(config)
    work = WorkDir(config, sources)
    work.open(restart)
    resumed: list[dict[str, Any]] = []
    pending: list[ChunkTask] = []
    n_chunks = 0
    for chunk in chunks:
        n_chunks += 1
        done = work.done(chunk.task.index)
        if done is not None:
            resumed.append(done)
        else:
            pending.append(chunk.task)
    if max_chunks is not None:
        pending = pending[:max_chunks]
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise RayUnavailable(f"cannot start or reach Ray at {address or 'a local instance'}: {exc}") from exc

    ray.data.DataContext.get_current().enable_progress_bars = False

    def results() -> Iterator[ChunkResult | dict[str, Any]]:
        yield from resumed
        if not pending:
            return
        size = workers or max(1, min(len(pending), int(ray.available_resources().get("CPU", 1))))
        dataset = ray.data.from_items([{"task": json.dumps(t.to_dict())} for t in pending])
        scored = dataset.map_batches(
            ChunkScorer,
            fn_constructor_kwargs=actor_kwargs(config, settings),
            batch_size=1,
            concurrency=size,
            num_cpus=1,
        )
        yield from _results(scored.iter_batches(batch_size=1, batch_format="numpy"))

    return drive(work, results(), max_chunks=max_chunks, progress=progress, n_chunks=n_chunks)
