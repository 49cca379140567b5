"""Two API processes over one database (two app instances here) share the per-key request budget
and the one-retraining-at-a-time rule, on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.api.conftest import serve

TIGHT = {"api_rate_limit_burst": 3, "api_rate_limit_per_minute": 1}


@pytest.fixture
def two_apps(settings, new_database, models):
    def start(**overrides):
        url = new_database()
        stack = ExitStack()
        apps = [stack.enter_context(serve(settings, url, models, **{**TIGHT, **overrides})) for _ in range(2)]
        return stack, apps
    return start


def _statuses(first, second, key: str) -> list[int]:
    """The same key, alternating between the two instances."""
    return [app.client.get("/v1/metrics/nps", headers={"X-API-Key": key}).status_code
            for app in (first, second, first, second, first)]


def test_a_key_has_one_budget_across_instances(two_apps):
    stack, (first, second) = two_apps()
    with stack:
        statuses = _statuses(first, second, first.keys["viewer"])
        assert statuses == [200, 200, 200, 429, 429]
        refused = second.client.get("/v1/metrics/nps", headers={"X-API-Key": first.keys["viewer"]})
        assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1


def test_per_process_budgets_when_not_shared(two_apps):
    """The control: counted per process, each instance lets the key through its own burst."""
    stack, (first, second) = two_apps(api_rate_limits_shared=False)
    with stack:
        assert _statuses(first, second, first.keys["viewer"]) == [200, 200, 200, 200, 200]


def test_one_retraining_run_at_a_time_across_instances(two_apps):
    stack, (first, second) = two_apps(api_rate_limit_burst=100)
    with stack:
        queued = first.call("POST", "/v1/admin/retrain", "admin")
        assert queued.status_code == 202, queued.text
        refused = second.call("POST", "/v1/admin/retrain", "admin")
        assert refused.status_code == 409 and refused.json()["error"]["details"]["run_id"] == queued.json()["id"]
