"""Lists that grow with the database are served in pages: API keys by cursor."""

from __future__ import annotations


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
