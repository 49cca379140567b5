"""Batch scoring: resume after interruption, bad-row accounting, formats, Ray equals local."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.batch.job import JobConfig, run_local
from nlp import FeedbackAnalyzer

TEXTS = [
    "Great service, the technician arrived on time.",
    "I was charged twice and nobody answers the phone. I am cancelling.",
    "Jag är nöjd med tjänsten men fakturan var fel.",
    "Obsługa była bardzo miła, polecam.",
    "The app keeps crashing when I pay my bill.",
    "Snabb leverans, bra pris.",
    "Nie mogę się dodzwonić na infolinię.",
    "Okay I guess.",
]


def rows(n: int) -> list[dict]:
    return [{"id": f"r{i:04d}", "nps": i % 11, "text": f"{TEXTS[i % len(TEXTS)]} #{i}"} for i in range(n)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return [_plain(r) for r in pq.read_table(path).to_pylist()]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _plain(value):
    """Parquet maps come back as (key, value) pairs; JSONL has objects."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {k: _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    return value


def assert_close(a, b, path="row"):
    """Equal up to float noise: scores are rounded to 4 places and batch padding moves the last digit."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=2e-3), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.fixture(scope="session")
def analyzer(analyzer_config, encoder):
    return FeedbackAnalyzer.from_config(analyzer_config, encoder=encoder)


def test_resume_after_stopping_midway_has_no_gaps_or_duplicates(tmp_path, analyzer):
    source = write_jsonl(tmp_path / "in.jsonl", rows(23))
    config = JobConfig(source, tmp_path / "out.jsonl", chunk_size=4)
    first = run_local(config, analyzer, max_chunks=2)
    assert not first.complete and first.read == 8
    assert not config.output.exists() and len(list(config.work_dir.glob("*.done.json"))) == 2

    second = run_local(config, analyzer)
    assert second.complete and second.resumed_chunks == 2 and second.read == 23 and second.scored == 23
    ids = [r["id"] for r in read_output(config.output)]
    assert ids == [r["id"] for r in rows(23)]
    assert not config.work_dir.exists()


def test_every_kind_of_bad_row_is_accounted_for(tmp_path, analyzer):
    csv_file = tmp_path / "in" / "a.csv"
    csv_file.parent.mkdir()
    csv_file.write_bytes(
        b"id,nps,text\n"
        b"1,9,\"Great service, fast.\"\n"
        b"2,2,\"Bad \xff\xfe bytes\"\n"
        b"3,5,\"\"\n"
        b"4,5,\"" + b"x" * 300 + b"\"\n"
        b"5,5,\"broken \"quote\" here\n"
        b"6,5,too,many,fields\n"
        b"7,7,\"Jag \xc3\xa4r n\xc3\xb6jd.\"\n"
    )
    (tmp_path / "in" / "b.jsonl").write_bytes(
        b'{"id": "8", "text": "Fine, thanks."}\n'
        b'{"id": "9", "comment": "no text column here"}\n'
        b'{"id": "10", "text": "   "}\n'
        b'{"id": "11", "text": "caf\xe9 latin-1"}\n'
        b'{"id": "12", "text": "unterminated\n'
        b'{"id": "13", "text": "Obs\xc5\x82uga super."}\n'
    )
    config = JobConfig(tmp_path / "in", tmp_path / "out.jsonl", chunk_size=3, max_chars=200)
    summary = run_local(config, analyzer)
    scored = read_output(config.output)
    errors = read_output(config.errors_path)
    assert summary.read == 13 == len(scored) + len(errors)
    assert (summary.scored, summary.failed) == (len(scored), len(errors)) == (4, 9)
    assert [r["id"] for r in scored] == ["1", "7", "8", "13"]
    reasons = {(Path(e["source"]).name, e["row"]): e["reason"] for e in errors}
    assert reasons[("a.csv", 2)].startswith("undecodable bytes")
    assert reasons[("a.csv", 3)] == "empty text"
    assert reasons[("a.csv", 4)].startswith("text longer than 200")
    assert "quoting" in reasons[("a.csv", 5)] and "quoting" in reasons[("a.csv", 6)]
    assert reasons[("b.jsonl", 2)] == "missing text column 'text'"
    assert reasons[("b.jsonl", 3)] == "empty text"
    assert reasons[("b.jsonl", 4)].startswith("undecodable bytes")
    assert reasons[("b.jsonl", 5)].startswith("invalid JSON")


def test_an_overlong_jsonl_line_is_one_bad_row_and_the_next_lines_are_read(tmp_path, analyzer):
    """A line past the cap (12 bytes a character of max_chars, plus 1 MiB) is reported, not read whole."""
    source = tmp_path / "in.jsonl"
    with source.open("wb") as fh:
        fh.write(b'{"id": "a", "text": "Fine, thanks."}\n')
        fh.write(b'{"id": "huge", "text": "' + b"x" * (2 << 20) + b'"}\n')
        fh.write(b'{"id": "b", "text": "Snabb leverans."}\n')
        fh.write(b'{"id": "huge-no-newline", "blob": "' + b"y" * (3 << 20))
    config = JobConfig(source, tmp_path / "out.jsonl", chunk_size=2, max_chars=200)
    summary = run_local(config, analyzer)
    assert [r["id"] for r in read_output(config.output)] == ["a", "b"]
    errors = read_output(config.errors_path)
    assert [(e["row"], e["line"]) for e in errors] == [(2, 2), (4, 4)]
    assert {e["reason"] for e in errors} == {f"line longer than {12 * 200 + (1 << 20)} bytes"}
    assert (summary.read, summary.scored, summary.failed) == (4, 2, 2)


def test_formats_round_trip_with_the_analyze_schema(tmp_path, analyzer):
    records = rows(10)
    inputs = {
        "csv": tmp_path / "in.csv",
        "jsonl": write_jsonl(tmp_path / "in.jsonl", records),
        "parquet": tmp_path / "in.parquet",
    }
    inputs["csv"].write_text(
        "id,nps,text\n" + "".join(f'{r["id"]},{r["nps"]},"{r["text"]}"\n' for r in records), encoding="utf-8"
    )
    pq.write_table(pa.Table.from_pylist(records), inputs["parquet"], row_group_size=3)
    expected = [
        {**r, **a.to_dict()} for r, a in zip(records, analyzer.analyze([r["text"] for r in records]))
    ]
    for fmt, source in inputs.items():
        for out_fmt in ("jsonl", "parquet"):
            config = JobConfig(source, tmp_path / f"{fmt}-out.{out_fmt}", chunk_size=4)
            summary = run_local(config, analyzer)
            assert summary.complete and summary.failed == 0
            got = read_output(config.output)
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                if fmt == "csv":
                    e = {**e, "nps": str(e["nps"])}
                assert_close(g, e)


@pytest.mark.slow
def test_ray_engine_equals_local_engine(tmp_path, analyzer, settings):
    import ray

    from api.batch.ray_engine import run_ray

    source = write_jsonl(tmp_path / "in.jsonl", rows(16) + [{"id": "empty", "text": ""}])
    local = JobConfig(source, tmp_path / "local.parquet", chunk_size=4)
    remote = JobConfig(source, tmp_path / "ray.parquet", chunk_size=4)
    run_local(local, analyzer)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_ray(remote, settings.model_copy(update={"torch_threads": 1}), workers=1)
    finally:
        ray.shutdown()
    assert summary.complete and (summary.read, summary.failed) == (17, 1)
    got, expected = read_output(remote.output), read_output(local.output)
    assert len(got) == len(expected) == 16
    for g, e in zip(got, expected):
        assert_close(g, e)
    assert remote.errors_path.read_text() == local.errors_path.read_text()
    assert json.loads(remote.errors_path.read_text())["row"] == 17


def test_ray_workers_get_the_analyzer_config_not_the_service_settings(tmp_path, settings):
    """Every actor once received all the settings, the database URL and its password included."""
    from api.batch.ray_engine import actor_kwargs
    from api.components import analyzer_config

    secret = settings.model_copy(update={"database_url": "postgresql+psycopg://cxm:s3cret-pw@db.internal/cxm"})
    kwargs = actor_kwargs(JobConfig(write_jsonl(tmp_path / "in.jsonl", rows(2)), tmp_path / "out.parquet"), secret)
    shipped = pickle.dumps(kwargs)  # what Ray serialises for every worker
    assert b"s3cret-pw" not in shipped and b"db.internal" not in shipped
    assert kwargs["analyzer"] == replace(analyzer_config(secret), threads=1)


def test_cli_exit_codes_and_summary(tmp_path):
    from typer.testing import CliRunner

    from api.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["score", str(tmp_path / "nowhere.csv"), str(tmp_path / "out.jsonl")])
    assert missing.exit_code == 2 and "error:" in missing.output

    records = rows(6) + [{"id": "empty", "text": ""}]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    args = ["score", str(source), str(tmp_path / "out.jsonl"), "--chunk-size", "3"]
    stopped = runner.invoke(app, [*args, "--max-chunks", "1"])
    assert stopped.exit_code == 3 and "rerun the same command" in stopped.output
    finished = runner.invoke(app, args)
    assert finished.exit_code == 1, finished.output  # one bad row
    summary = next(json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{"))
    assert (summary["read"], summary["scored"], summary["failed"]) == (7, 6, 1)
    assert [r["id"] for r in read_output(tmp_path / "out.jsonl")] == [r["id"] for r in rows(6)]


@pytest.mark.slow
def test_killed_job_resumes_with_every_row_exactly_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    source = write_jsonl(tmp_path / "in.jsonl", rows(60))
    output = tmp_path / "out.jsonl"
    cmd = [str(Path(sys.executable).parent / "cxm"), "score", str(source), str(output), "--chunk-size", "5"]
    work_dir = JobConfig(source, output).work_dir
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while len(list(work_dir.glob("*.done.json"))) < 2 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # no clean shutdown: whatever was half-written stays
    job.wait()
    done_before = len(list(work_dir.glob("*.done.json")))
    assert 2 <= done_before < 12 and not output.exists()

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["resumed_chunks"] >= done_before and summary["read"] == summary["scored"] == 60
    assert [r["id"] for r in read_output(output)] == [r["id"] for r in rows(60)]
