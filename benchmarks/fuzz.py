"""Schema fuzzing at depth: schemathesis against the real app, with a key of every role, never a 5xx.

Each operation of the OpenAPI spec gets ``--examples`` generated requests with an admin key (every
operation is open to it, so requests get past authentication) and ``--role-examples`` with each
other role's key (its operations answer, the rest 403). Then the stateful pass: schemathesis
chains operations along the links it infers (a created key, case or run read back, changed,
deleted) for ``--stateful-examples`` sequences. Revoking keys is fuzzed only statefully (where a
revoked admin key of the fuzzer's own is replaced): operation by operation it would revoke the keys. The app runs in this process
over a fresh SQLite file, and with ``--postgres`` also over a throwaway PostgreSQL cluster; its
analyzer is the real one with language identification only (``--full-analyzer``: every head).

Run: ``.venv/bin/python -m benchmarks.fuzz``. Prints requests and statuses per operation and ends
with one JSON line: ``{"fuzz": {"operations", "examples", "server_errors", "seconds", ...}}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, reject, settings

from api.app import create_app
from api.auth import create_api_key
from api.runtime import Models
from api.services.worker import Worker
from api.settings import Settings
from churn.model import ChurnModel
from nlp import AnalyzerConfig, FeedbackAnalyzer
from nlp.pipeline import build_encoder, build_language_detector
from tests.throwaway_postgres import ThrowawayPostgres

ROLES = ("admin", "viewer", "agent", "ingest")
OPEN_LIMITS = {"api_rate_limit_burst": 1_000_000, "api_rate_limit_per_minute": 1_000_000,
               "api_analyze_chars_per_minute": 100_000_000}


class Tally:
    """Statuses per operation, and each 5xx with what provoked it."""

    def __init__(self):
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.errors: list[dict] = []

    def call(self, case, headers: dict[str, str], role: str):
        """Send ``case``; an exception escaping the app counts as a 500."""
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the in-process transport re-raises what the app did not handle
            self.record(case, 500, role, repr(exc)[:300])
            return None
        self.record(case, response.status_code, role, response.text[:300])
        return response

    def record(self, case, status: int, role: str, body: str) -> None:
        label = f"{case.method} {case.operation.path}"
        self.statuses[label][status] += 1
        if status >= 500:
            self.errors.append({"operation": label, "role": role, "status": status, "body": body,
                                "curl": case.as_curl_command(headers={"X-API-Key": "..."})})


def _models(full: bool) -> Models:
    config = AnalyzerConfig(model_dir=Settings().model_dir)
    encoder, detector = build_encoder(config), build_language_detector(config)
    analyzer = (FeedbackAnalyzer.from_config(config, encoder=encoder, language_detector=detector) if full
                else FeedbackAnalyzer(encoder, detector))
    return Models(analyzer=analyzer, churn_model=ChurnModel.load())


def _key(app, role: str) -> tuple[int, str]:
    with app.state.runtime.sessions() as session:
        row, secret = create_api_key(session, f"fuzz-{role}", role)
        session.commit()
        return row.id, secret


def _operations(schema, tally: Tally, keys: dict[str, str], args) -> int:
    """The per-operation pass; returns the number of requests sent."""
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for role in ROLES:
            examples = args.examples if role == "admin" else args.role_examples
            if examples == 0:
                continue
            headers = {"X-API-Key": keys[role]}

            @given(case=operation.as_strategy())
            @settings(max_examples=examples, deadline=None, database=None, derandomize=args.derandomize,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case):
                nonlocal sent
                tally.call(case, headers, role)
                sent += 1

            fuzz()
        label = f"{operation.method.upper()} {operation.path}"
        print(f"{label:45s} " + " ".join(f"{status}x{count}" for status, count in sorted(tally.statuses[label].items())),
              flush=True)
    return sent


def _stateful(schema, tally: Tally, app, args) -> tuple[int, int]:
    """Sequences along the links schemathesis infers; returns (links, requests sent).

    A sequence may revoke any key, the fuzzer's own too: a new admin key replaces a revoked one.
    """
    machine = schema.as_state_machine()
    links = schema.statistic.transitions.total
    admin = {"key": _key(app, "admin")}
    sent = 0

    class Fuzz(machine):
        def get_call_kwargs(self, case):
            return {"headers": {"X-API-Key": admin["key"][1]}}

        def call(self, case, **kwargs):
            nonlocal sent
            sent += 1
            response = tally.call(case, kwargs["headers"], "admin")
            if response is None:  # counted; the sequence cannot go on without a response
                reject()
            return response

        def validate_response(self, response, case, additional_checks=(), **kwargs):
            if (case.method == "DELETE" and case.operation.path == "/v1/admin/keys/{key_id}"
                    and str((case.path_parameters or {}).get("key_id")) == str(admin["key"][0])):
                admin["key"] = _key(app, "admin")

    Fuzz.run(settings=settings(max_examples=args.stateful_examples, stateful_step_count=args.steps,
                               deadline=None, database=None, derandomize=args.derandomize,
                               suppress_health_check=list(HealthCheck)))
    return links, sent


def fuzz(database_url: str, models: Models, args) -> dict:
    app_settings = Settings(database_url=database_url, api_docs_open=True, **OPEN_LIMITS)
    tally, started = Tally(), time.monotonic()
    with TestClient(create_app(app_settings, models=models)) as client:
        keys = {role: _key(client.app, role)[1] for role in ROLES}
        schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        sent = _operations(schema.exclude(path="/v1/admin/keys/{key_id}", method="DELETE"), tally, keys, args)
        links, stateful_sent = _stateful(schema, tally, client.app, args) if args.stateful_examples else (0, 0)
        runtime = client.app.state.runtime  # the retraining runs the fuzzer queued, trained as a worker would
        Worker(runtime.sessions, runtime.settings, lambda: runtime.models.analyzer).run_once()
    seconds = time.monotonic() - started
    database = database_url.split(":", 1)[0].split("+")[0]
    for label, statuses in sorted(tally.statuses.items()):
        print(f"{database:10s} {label:45s} {sum(statuses.values()):6d} requests  "
              + " ".join(f"{status}x{count}" for status, count in sorted(statuses.items())))
    for error in tally.errors[:20]:
        print(f"5xx: {error}")
    print(f"{database}: {sent} requests operation by operation, {stateful_sent} in stateful sequences along "
          f"{links} inferred links; {len(tally.errors)} answers 5xx")
    return {"database": database, "operations": len(tally.statuses), "examples": sent + stateful_sent,
            "stateful_requests": stateful_sent, "links": links, "server_errors": len(tally.errors), "seconds": round(seconds, 1),
            "statuses": {label: dict(statuses) for label, statuses in sorted(tally.statuses.items())},
            "errors": tally.errors[:20]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200, help="requests per operation with the admin key")
    parser.add_argument("--role-examples", type=int, default=20, help="requests per operation with each other role")
    parser.add_argument("--stateful-examples", type=int, default=50, help="stateful sequences (0: skip)")
    parser.add_argument("--steps", type=int, default=8, help="most steps in one stateful sequence")
    parser.add_argument("--postgres", action="store_true", help="also fuzz over a throwaway PostgreSQL cluster")
    parser.add_argument("--full-analyzer", action="store_true", help="every analysis head (slower)")
    parser.add_argument("--random", dest="derandomize", action="store_false",
                        help="fresh random examples (default: derandomised, reproducible)")
    args = parser.parse_args()
    models = _models(args.full_analyzer)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(fuzz(f"sqlite:///{Path(tmp) / 'fuzz.db'}", models, args))
    if args.postgres:
        cluster = ThrowawayPostgres()
        cluster.start()
        try:
            runs.append(fuzz(cluster.create_database(), models, args))
        finally:
            cluster.remove()
    print(json.dumps({"fuzz": {"operations": max(r["operations"] for r in runs),
                               "examples": sum(r["examples"] for r in runs),
                               "server_errors": sum(r["server_errors"] for r in runs),
                               "seconds": round(sum(r["seconds"] for r in runs), 1),
                               "databases": [r["database"] for r in runs],
                               "stateful_requests": sum(r["stateful_requests"] for r in runs)},
                      "details": runs}))


if __name__ == "__main__":
    main()
