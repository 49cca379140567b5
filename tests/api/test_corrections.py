"""Agents' corrections (stored beside the model's analysis, shown as the effective label), model-vs-agent
agreement per week, and retraining the text model's sentiment head from corrections, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from api.cli import app
from api.db import queries
from api.services.correction_training import held_out, load_served, retrain_from_corrections, text_model_source
from api.settings import get_settings
from nlp.head_refit import pooled_features, reason_probabilities, refit_reasons, sentiment_probabilities
from nlp.pipeline import AnalyzerConfig, build_sentiment
from nlp.sentiment_model import TransformerSentiment
from nlp.text_data import HANDWRITTEN_DIR, handwritten_rows
from tests.api.conftest import serve

WEEK_47 = "2026-11-17T10:00:00Z"  # ISO week 2026-W47 starts on Monday 16 November


@pytest.fixture(scope="module")
def full_api(settings, new_database, models, churn_analyzer):
    """A fresh database (its corrections are all this module's) served with every analysis head."""
    with serve(settings, new_database(), replace(models, analyzer=churn_analyzer)) as api:
        yield api


def ingest(api, texts: list[str], at: str = WEEK_47) -> list[int]:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    items = [{"kind": "social", "external_id": f"x-{uuid.uuid4().hex}", "customer_id": customer, "channel": "social",
              "timestamp": at, "text": text} for text in texts]
    response = api.call("POST", "/v1/feedback", "ingest", json={"items": items})
    assert response.status_code == 200, response.text
    assert [i["analysis_status"] for i in response.json()["items"]] == ["analysed"] * len(texts)
    return [i["feedback_id"] for i in response.json()["items"]]


def timeline_entry(api, feedback_id: int) -> dict:
    runtime = api.app.state.runtime
    with runtime.sessions() as session:
        customer = queries.get_feedback(session, feedback_id).customer_id
    profile = api.call("GET", f"/v1/customers/{customer}", "agent").json()
    return next(e for e in profile["timeline"] if e["feedback_id"] == feedback_id)


def test_corrections_are_stored_beside_the_analysis_and_shown_as_the_effective_label(full_api):
    [fid] = ingest(full_api, ["Far too expensive and the invoice was wrong again. I will cancel and switch."])
    before = timeline_entry(full_api, fid)
    assert before["effective"]["corrected"] == [] and before["effective"]["sentiment"] == before["sentiment"]["label"]
    model_sentiment, model_reasons = before["sentiment"]["label"], [r["id"] for r in before["reasons"]]
    model_churn = before["signals"]["churn_intent"]
    wanted = "positive" if model_sentiment != "positive" else "neutral"
    body = {"sentiment": wanted, "reasons": ["price", "billing"], "churn_intent": not model_churn, "note": "re-read"}

    first = full_api.call("POST", f"/v1/feedback/{fid}/corrections", "agent", json=body)
    assert first.status_code == 200, first.text
    created = {c["field"]: c for c in first.json()["created"]}
    assert set(created) == {"sentiment", "reasons", "churn_intent"} and first.json()["unchanged"] == []
    assert created["sentiment"]["old_value"] == created["sentiment"]["model_value"] == model_sentiment
    assert created["sentiment"]["new_value"] == wanted
    assert created["reasons"]["model_value"] == model_reasons and created["reasons"]["new_value"] == ["billing", "price"]
    assert created["churn_intent"]["old_value"] is model_churn
    assert all(c["actor"].startswith("agent-") and c["note"] == "re-read" and c["at"] for c in created.values())

    again = full_api.call("POST", f"/v1/feedback/{fid}/corrections", "agent", json=body).json()
    assert again["created"] == [] and sorted(again["unchanged"]) == ["churn_intent", "reasons", "sentiment"]

    third = full_api.call("POST", f"/v1/feedback/{fid}/corrections", "admin",
                          json={"sentiment": "neutral", "note": "called anna@example.com"}).json()
    [change] = third["created"]
    assert (change["old_value"], change["new_value"], change["model_value"]) == (wanted, "neutral", model_sentiment)
    assert change["actor"].startswith("admin-") and "anna@example.com" not in change["note"]

    after = timeline_entry(full_api, fid)
    assert after["sentiment"] == before["sentiment"] and after["reasons"] == before["reasons"]  # the model's, kept
    assert after["signals"] == before["signals"]
    assert after["effective"] == {"sentiment": "neutral", "reasons": ["billing", "price"],
                                  "churn_intent": not model_churn,
                                  "corrected": ["sentiment", "reasons", "churn_intent"]}
    item = full_api.call("GET", f"/v1/feedback/{fid}/corrections", "agent").json()
    assert item["effective"] == after["effective"] and [c["id"] for c in item["items"]][0] == change["id"]
    assert len(item["items"]) == 4

    pages, cursor = [], None
    while True:
        params = {"feedback_id": fid, "limit": 3, **({"before": cursor} if cursor else {})}
        page = full_api.call("GET", "/v1/corrections", "agent", params=params).json()
        pages.append([c["id"] for c in page["items"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 1]
    ids = [i for p in pages for i in p]
    assert ids == sorted(ids, reverse=True) == [c["id"] for c in item["items"]]
    only = full_api.call("GET", "/v1/corrections", "agent", params={"feedback_id": fid, "field": "sentiment"}).json()
    assert [c["new_value"] for c in only["items"]] == ["neutral", wanted]


def test_corrections_need_an_agent_and_valid_values(full_api):
    [fid] = ingest(full_api, ["The app keeps crashing when I pay."])
    path = f"/v1/feedback/{fid}/corrections"
    assert full_api.call("POST", path, json={"sentiment": "negative"}).status_code == 401
    for role in ("viewer", "ingest"):
        response = full_api.call("POST", path, role, json={"sentiment": "negative"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert full_api.call("GET", "/v1/corrections", "viewer").status_code == 403
    for body in ({"sentiment": "angry"}, {}, {"note": "only a note"}, {"churn_intent": "maybe"},
                 {"sentiment": "negative", "confidence": 1}):
        response = full_api.call("POST", path, "agent", json=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error", body
    unknown = full_api.call("POST", path, "agent", json={"reasons": ["price", "weather"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["details"] == {"unknown_reasons": ["weather"]}
    missing = full_api.call("POST", "/v1/feedback/999999/corrections", "agent", json={"sentiment": "negative"})
    assert missing.status_code == 404
    bad_cursor = full_api.call("GET", "/v1/corrections", "agent", params={"before": "yesterday"})
    assert bad_cursor.status_code == 422
    assert full_api.call("GET", f"/v1/feedback/{fid}/corrections", "agent").json()["items"] == []  # nothing stored


def test_model_quality_is_the_share_of_judged_items_where_the_model_agreed(full_api):
    fids = ingest(full_api, ["Great staff, they fixed it in minutes.", "Nobody answers the phone, awful service."],
                  at="2026-10-06T09:00:00Z")  # ISO week 2026-W41
    labels = [timeline_entry(full_api, f)["sentiment"]["label"] for f in fids]
    other = next(label for label in ("negative", "neutral", "positive") if label != labels[1])
    full_api.call("POST", f"/v1/feedback/{fids[0]}/corrections", "agent", json={"sentiment": labels[0]})  # confirms
    full_api.call("POST", f"/v1/feedback/{fids[1]}/corrections", "agent", json={"sentiment": other})
    quality = full_api.call("GET", "/v1/metrics/model-quality", "viewer",
                            params={"start": "2026-10-01T00:00:00Z", "end": "2026-10-31T00:00:00Z"})
    assert quality.status_code == 200, quality.text
    assert quality.json()["items"] == [{"week": "2026-W41", "week_start": "2026-10-05", "field": "sentiment",
                                        "corrected": 2, "agreed": 1, "agreement": 0.5}]


def test_retraining_with_too_few_corrections_fails_and_activates_nothing(full_api, encoder, tmp_path):
    runtime = full_api.app.state.runtime
    settings = runtime.settings.model_copy(update={"model_dir": tmp_path})
    with runtime.sessions() as session:
        current = load_served(session, settings, encoder)
    run = retrain_from_corrections(runtime.sessions, settings, current, "reasons", "test")
    assert (run.status, run.activated) == ("failed", False) and "too few reasons corrections" in run.error
    listed = full_api.call("GET", f"/v1/admin/runs/{run.id}", "admin").json()
    assert (listed["kind"], listed["status"]) == ("reasons", "failed")


SICK = [f"{thing} is sick{tail}" for thing in (
    "The new app", "Your 5G coverage", "The fibre speed", "This router", "The checkout", "Your support team",
    "The new plan", "The mobile data", "The TV package", "The streaming quality")
    for tail in (" now.", " honestly.", " since the update!", ", no joke.", " this month.")]


@pytest.mark.slow
def test_fifty_corrections_teach_the_sentiment_head_and_only_a_better_head_is_activated(
        settings, new_database, models, churn_analyzer, encoder, tmp_path):
    """Slang "sick" (great) reads negative to the shipped head; 50 corrections fix it on held-out items."""
    with serve(settings, new_database(), replace(models, analyzer=churn_analyzer)) as api:
        fids = ingest(api, SICK)
        runtime = api.app.state.runtime
        for fid in fids:
            assert api.call("POST", f"/v1/feedback/{fid}/corrections", "agent",
                            json={"sentiment": "positive"}).status_code == 200
        test_ids = [f for f in fids if held_out(f)]
        assert len(test_ids) >= 5
        served = runtime.settings.model_copy(update={"model_dir": tmp_path})
        with runtime.sessions() as session:
            shipped = load_served(session, served, encoder)
            assert text_model_source(session, served) == "builtin"
        assert sentiment_probabilities(shipped, pooled_features(shipped, SICK)).argmax(axis=1).tolist().count(2) <= 2

        run = retrain_from_corrections(runtime.sessions, served, shipped, "sentiment", "test", shipped_rows=300)
        assert run.status == "succeeded" and run.activated, run.error
        assert run.metrics["held_out"] == run.baseline["held_out"] == len(test_ids)
        assert run.metrics["corrections"] == len(fids) - len(test_ids) and run.metrics["shipped_rows"] == 300
        assert run.metrics["accuracy"] > run.baseline["accuracy"]
        with runtime.sessions() as session:
            assert text_model_source(session, served) == run.path
            retrained = load_served(session, served, encoder)
        assert isinstance(retrained, TransformerSentiment) and str(retrained.source) == run.path
        held = [text for fid, text in zip(fids, SICK) if held_out(fid)]  # the saved artefact scores as evaluated
        served_labels = [s.label for s in retrained.predict(held)]
        assert served_labels.count("positive") / len(held) == run.metrics["accuracy"]
        assert [s.label for s in retrained.predict(["The invoice was wrong and nobody answers."])] == ["negative"]

        again = retrain_from_corrections(runtime.sessions, served, retrained, "sentiment", "test", shipped_rows=300)
        assert (again.status, again.activated) == ("rejected", False)
        assert again.metrics["accuracy"] <= again.baseline["accuracy"] and "not better" in again.error
        with runtime.sessions() as session:
            assert text_model_source(session, served) == run.path
        runs = api.call("GET", "/v1/admin/runs", "admin").json()["items"]
        assert [(r["kind"], r["status"], r["activated"]) for r in runs[:2]] == [
            ("sentiment", "rejected", False), ("sentiment", "succeeded", True)]


def test_the_train_commands_retrain_from_the_services_corrections(full_api, monkeypatch, tmp_path):
    monkeypatch.setenv("CXM_DATABASE_URL", full_api.app.state.runtime.settings.database_url)
    monkeypatch.setenv("CXM_REASON_MODEL", str(tmp_path))
    get_settings.cache_clear()
    try:
        refused = CliRunner().invoke(app, ["train", "reasons", "--from-corrections"])
        assert refused.exit_code == 2 and "CXM_REASON_MODEL" in refused.output
        monkeypatch.delenv("CXM_REASON_MODEL")
        get_settings.cache_clear()
        too_few = CliRunner().invoke(app, ["train", "sentiment", "--from-corrections"])
        assert too_few.exit_code == 2 and "too few sentiment corrections" in too_few.output, too_few.output
        assert CliRunner().invoke(app, ["train", "sentiment"]).exit_code == 2  # neither -o nor --from-corrections
    finally:
        get_settings.cache_clear()
    runs = full_api.call("GET", "/v1/admin/runs", "admin").json()["items"]
    assert (runs[0]["kind"], runs[0]["status"], runs[0]["requested_by"]) == (
        "sentiment", "failed", "cxm train sentiment --from-corrections")



@pytest.mark.slow
def test_refitting_the_reason_head_learns_a_reason_it_missed(encoder, settings):
    """The reason head's refit, as `cxm train reasons --from-corrections` runs it, anchored by shipped rows."""
    model = build_sentiment(AnalyzerConfig(model_dir=settings.model_dir), encoder)
    shipped = handwritten_rows(HANDWRITTEN_DIR, seed=0, valid_fraction=0.0).sample(n=100, random_state=0)
    billing = ["The invoice was wrong again.", "I was charged twice this month."]
    column = list(model.reason_ids).index("usability")
    train = pooled_features(model, [*shipped["text"], *SICK[::2]])
    test, other = pooled_features(model, SICK[1::2]), pooled_features(model, billing)
    refitted = refit_reasons(model, train, [*shipped["reasons"], *[["usability"]] * len(SICK[::2])],
                             weight=np.r_[np.ones(len(shipped)), np.full(len(SICK[::2]), 5.0)])
    tagged = {name: reason_probabilities(m, test)[:, column] >= m.reason_threshold
              for name, m in (("before", model), ("after", refitted))}
    assert tagged["before"].mean() < 0.5 and tagged["after"].mean() > 0.9
    assert not (reason_probabilities(refitted, other)[:, column] >= refitted.reason_threshold).any()
    assert refitted.info["refits"][-1] == {"head": "reasons", "rows": len(train), "l2": 1e-3}
