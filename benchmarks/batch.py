"""Batch scoring throughput and memory: ``cxm score``'s local and Ray engines against the analyzer
called in-process on the same rows, and peak RSS for a small and a large input (it should be flat).
Ends with one JSON line.

Run from the repository root: ``.venv/bin/python -m benchmarks.batch [--rows 100000] [--small 10000]``.
Each job runs in its own process, so its peak RSS is its own. The rows are generated feedback
(en/sv/pl templates with varied details), so no data set is needed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = [
    "The technician arrived {when} and fixed the {thing} quickly, great service.",
    "I was charged twice for the {thing} and nobody answers the phone, I am thinking of leaving.",
    "Support was friendly but the {thing} still does not work after {n} calls.",
    "Jag är nöjd med {thing}, men fakturan kom {when}.",
    "Kundtjänsten svarade inte på {n} dagar, mycket dåligt.",
    "Obsługa była miła, a {thing} działa bez zarzutu.",
    "Czekałem {n} dni na odpowiedź, rozważam zmianę operatora.",
    "The app crashes every time I open the {thing} page.",
    "Okay overall, the price for the {thing} is a bit high.",
    "Snabb leverans och bra pris på {thing}.",
]
THINGS = ["router", "invoice", "mobile plan", "fibre box", "TV package", "SIM card", "contract"]
WHEN = ["on time", "late", "a day early", "two hours late", "yesterday"]


def generate(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` JSONL feedback rows, written in a stream."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            text = rng.choice(TEMPLATES).format(thing=rng.choice(THINGS), when=rng.choice(WHEN), n=rng.randint(2, 9))
            row = {"id": f"f{i:07d}", "customer_id": f"c{rng.randint(1, n // 3 + 1):06d}", "nps": rng.randint(0, 10), "text": text}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def in_process(sample: int, chunk_size: int, workdir: Path) -> dict:
    """The analyzer alone, called on ``chunk_size`` texts at a time (what each job chunk does)."""
    from nlp import load_default

    texts = [json.loads(line)["text"] for line in generate(workdir / "sample.jsonl", sample, seed=1).open()]
    analyzer = load_default()
    analyzer.analyze(texts[:32])
    start = time.perf_counter()
    for i in range(0, len(texts), chunk_size):
        analyzer.analyze(texts[i : i + chunk_size])
    seconds = time.perf_counter() - start
    return {"rows": len(texts), "seconds": round(seconds, 2), "rows_per_s": round(len(texts) / seconds, 1)}


def job(engine: str, source: Path, output: Path, chunk_size: int) -> dict:
    """One scoring job (run in a child process); throughput counted after the models are loaded."""
    from api.batch.job import JobConfig, run_local
    from api.settings import Settings

    settings = Settings()
    config = JobConfig(source, output, chunk_size=chunk_size)
    if engine == "ray":
        import ray

        from api.batch.ray_engine import run_ray

        ray.init(include_dashboard=False, log_to_driver=False)
        start = time.perf_counter()
        summary = run_ray(config, settings, restart=True)
        seconds = time.perf_counter() - start
        ray.shutdown()
        scoring = seconds
    else:
        from nlp import load_default

        begin = time.perf_counter()
        analyzer = load_default()
        start = time.perf_counter()
        summary = run_local(config, analyzer, restart=True)
        scoring = time.perf_counter() - start
        seconds = time.perf_counter() - begin
    return {
        "engine": engine, "rows": summary.read, "scored": summary.scored, "failed": summary.failed,
        "seconds": round(seconds, 2), "rows_per_s": round(summary.read / scoring, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(engine: str, source: Path, output: Path, chunk_size: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.batch", "--job", engine, "--input", str(source),
           "--output", str(output), "--chunk-size", str(chunk_size)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="Rows of the large input.")
    parser.add_argument("--small", type=int, default=10_000, help="Rows of the small input (RSS flatness).")
    parser.add_argument("--sample", type=int, default=2000, help="Rows for the in-process throughput.")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--engines", default="local,ray", help="Comma-separated: local, ray.")
    parser.add_argument("--job", choices=["local", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(job(args.job, args.input, args.output, args.chunk_size)))
        return

    with tempfile.TemporaryDirectory(prefix="cxm-batch-bench-") as tmp:
        workdir = Path(tmp)
        base = in_process(args.sample, args.chunk_size, workdir)
        print(f"in-process analyzer: {base['rows_per_s']} rows/s ({base['rows']} rows)", flush=True)
        runs = []
        for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
            sizes = [args.small, args.rows] if engine == "local" else [args.rows]
            for size in sizes:
                source = generate(workdir / f"in-{size}.jsonl", size)
                result = run_child(engine, source, workdir / f"out-{engine}-{size}.jsonl", args.chunk_size)
                result["vs_in_process"] = round(result["rows_per_s"] / base["rows_per_s"], 3)
                runs.append(result)
                print(
                    f"{engine:5s} {size:>7d} rows: {result['rows_per_s']} rows/s"
                    f" ({result['vs_in_process']:.0%} of in-process), {result['seconds']} s,"
                    f" peak RSS {result['peak_rss_mb']} MB (driver process)",
                    flush=True,
                )
    local = [r for r in runs if r["engine"] == "local"]
    summary = {
        "benchmark": "batch",
        "in_process_rows_per_s": base["rows_per_s"],
        "runs": runs,
        "local_vs_in_process": local[-1]["vs_in_process"] if local else None,
        "local_rss_small_mb": local[0]["peak_rss_mb"] if len(local) == 2 else None,
        "local_rss_large_mb": local[-1]["peak_rss_mb"] if len(local) == 2 else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
