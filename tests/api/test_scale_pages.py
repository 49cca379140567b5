"""Lists that grow with the database are served in pages: API keys, retraining runs and alerts by cursor."""

from __future__ import annotations

import pytest

from api.db.models import Alert, ModelRun
from tests.api.conftest import serve


def test_api_keys_come_in_pages_that_cover_every_key_once(api):
    ids, after, pages = [], 0, 0
    while True:
        body = api.call("GET", "/v1/admin/keys", "admin", params={"limit": 2, "after": after}).json()
        assert len(body["items"]) <= 2
        ids += [k["id"] for k in body["items"]]
        pages += 1
        if body["next_after"] is None:
            break
        after = body["next_after"]
    everything = api.call("GET", "/v1/admin/keys", "admin", params={"limit": 500}).json()
    assert everything["next_after"] is None or len(everything["items"]) == 500
    assert ids == sorted(set(ids)) and len(ids) >= 4 and pages >= 2
    assert ids[: len(everything["items"])] == [k["id"] for k in everything["items"]][: len(ids)]
    assert api.call("GET", "/v1/admin/keys", "admin", params={"limit": 0}).status_code == 422


def _walk(api, path: str, limit: int) -> list[int]:
    """Every id of a latest-first list, page by page along ``next_before``."""
    ids, params = [], {"limit": limit}
    while True:
        body = api.call("GET", path, "admin", params=params).json()
        assert len(body["items"]) <= limit and body["offset"] == 0
        ids += [item["id"] for item in body["items"]]
        if body["next_before"] is None:
            return ids
        params["before"] = body["next_before"]


@pytest.fixture
def histories(settings, new_database, models):
    """An app over a database of its own holding 7 finished runs and 7 alerts of one rule."""
    with serve(settings, new_database(), models) as api:
        rule = api.call("POST", "/v1/admin/alerts/rules", "admin",
                        json={"name": "high tier", "kind": "high_tier_entry", "webhook_url": "https://hooks.example.com/x"})
        assert rule.status_code == 201, rule.text
        with api.app.state.runtime.sessions() as session:
            for n in range(7):
                session.add(ModelRun(kind="churn", status="failed", requested_by="admin", error=f"run {n}"))
                session.add(Alert(rule_id=rule.json()["id"], dedup_key=f"high:{n}", subject=f"customer {n}",
                                  title=f"customer {n} entered the high tier", status="delivered"))
            session.commit()
        yield api


@pytest.mark.parametrize("path", ["/v1/admin/runs", "/v1/admin/alerts"])
def test_runs_and_alerts_come_in_pages_that_cover_every_item_once(histories, path):
    everything = histories.call("GET", path, "admin", params={"limit": 200}).json()
    ids = [item["id"] for item in everything["items"]]
    assert len(ids) == everything["total"] == 7 and everything["next_before"] is None
    assert ids == sorted(ids, reverse=True)
    assert _walk(histories, path, 3) == ids  # pages of 3, 3 and 1, latest first
    assert _walk(histories, path, 7) == ids
    offset = histories.call("GET", path, "admin", params={"limit": 3, "offset": 3}).json()
    assert [item["id"] for item in offset["items"]] == ids[3:6]
    both = histories.call("GET", path, "admin", params={"offset": 3, "before": ids[0]})
    assert both.status_code == 422 and "before=" in both.json()["error"]["message"]
    assert histories.call("GET", path, "admin", params={"before": 0}).status_code == 422
