"""The web app in a real headless Chromium against a live server (SQLite and PostgreSQL), plus its CSRF
and cookie rules over HTTP. Every browser test ends with no console error and leaves screenshots."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import datetime, timezone

import httpx
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from api.auth import revoke_api_key
from api.db import queries
from api.db.models import Feedback
from api.web.session import COOKIE, new_session
from starlette.responses import Response
from tests.web.conftest import DASHBOARD_MONTHS, HAPPY, LEAVER, PLANS, dashboard_feedback


def navigate(browser, element) -> None:
    """Click ``element`` (or call it) and wait until the next page replaced this one and is whole.

    The old page is marked in its own ``window``; the wait ends when a window without the mark has
    finished loading. While the browser swaps documents any command may fail (a stale element, or
    chromedriver's "node does not belong to the document"), so those failures only mean "not yet".
    """
    browser.execute_script("window.cxmLeaving = true")
    element() if callable(element) else element.click()
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script("return !window.cxmLeaving && document.readyState === 'complete'"))


def sign_in(browser, live_app, key: str) -> None:
    browser.get_log("browser")  # what earlier tests left
    browser.delete_all_cookies()
    for attempt in range(2):
        browser.get(f"{live_app.url}/app/login")
        try:
            browser.find_element(By.ID, "key").send_keys(key)
            navigate(browser, browser.find_element(By.CSS_SELECTOR, "form[action='/app/login'] button"))
            return
        except WebDriverException:  # a navigation the previous test started replaced the page under us
            if attempt:
                raise


def text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "main").text


def shot(browser, screenshots, live_app, name: str) -> None:
    """Save what the browser shows (1280x800) as ``<database>-<name>.png``."""
    assert browser.save_screenshot(str(screenshots / f"{live_app.database}-{name}.png"))


def no_console_errors(browser, *refused: str) -> None:
    """No SEVERE browser log entry since the last check, but the network ones of the ``refused`` pages
    this test asked for on purpose (a 4xx answer is logged as a failed resource)."""
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
              and not (entry["source"] == "network" and any(f"{page} - " in entry["message"] for page in refused))]
    assert not severe, severe


def moves(browser) -> list[str]:
    return [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "status")).options]


def move(browser, status: str, note: str) -> None:
    Select(browser.find_element(By.ID, "status")).select_by_value(status)
    browser.find_element(By.ID, "note").send_keys(note)
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "form.move button"))


@pytest.mark.slow
def test_agent_works_a_customer_from_the_queue_to_resolved(browser, live_app, screenshots):
    sign_in(browser, live_app, live_app.keys["agent"])
    assert browser.current_url.endswith("/app/queue")
    shot(browser, screenshots, live_app, "queue")
    browser.get(f"{live_app.url}/app/queue?segment=region:north")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "a.customer-link").text for r in rows] == [LEAVER, HAPPY]
    leaver = rows[0]
    assert "high" in leaver.text.lower() and "open" in leaver.text and "unassigned" in leaver.text
    assert leaver.find_elements(By.CSS_SELECTOR, ".why li"), "the plain-words why is shown"
    assert leaver.find_element(By.CSS_SELECTOR, ".sent").text == "negative"
    browser.get(f"{live_app.url}/app/queue?segment=plan")
    assert "must be key:value" in text(browser)
    assert browser.find_element(By.NAME, "segment").get_attribute("value") == "plan"  # the input is kept
    browser.get(f"{live_app.url}/app/queue?sort=feedback")
    newest = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.customer-link")][:2]
    assert sorted(newest) == sorted([LEAVER, HAPPY]), "their feedback is the newest"
    assert "latest feedback first" in text(browser)

    # Keyboard only: Tab reaches the leaver's "Assign to me", Enter presses it.
    browser.get(f"{live_app.url}/app/queue?segment=region:north")
    for _ in range(40):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.switch_to.active_element.get_attribute("aria-label") == f"Assign {LEAVER} to me":
            break
    else:
        pytest.fail("the Assign to me button is not reachable with Tab")
    navigate(browser, lambda: browser.switch_to.active_element.send_keys(Keys.ENTER))
    agent = browser.find_element(By.CSS_SELECTOR, ".who").text.split(" · ")[0]
    leaver = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")[0]
    assert leaver.find_element(By.CSS_SELECTOR, ".assignee").text == agent
    assert not leaver.find_elements(By.XPATH, ".//button[text()='Assign to me']")
    browser.get(f"{live_app.url}/app/queue?assignee={agent}")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.customer-link")] == [LEAVER]
    browser.get(f"{live_app.url}/app/queue?tier=low")
    assert LEAVER not in text(browser)

    # Keyboard only: Tab reaches the first customer link, Enter opens it.
    browser.get(f"{live_app.url}/app/queue?segment=region:north")
    for _ in range(40):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if "customer-link" in (browser.switch_to.active_element.get_attribute("class") or ""):
            break
    else:
        pytest.fail("no customer link is reachable with Tab")
    navigate(browser, lambda: browser.switch_to.active_element.send_keys(Keys.ENTER))
    assert browser.current_url.endswith(f"/app/customers/{LEAVER}")

    page = text(browser)
    assert "plan" in page and "pro" in page and "high" in page.lower() and "What drives it" in page
    assert browser.find_elements(By.CSS_SELECTOR, ".drivers li"), "the churn drivers"
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart circle.dot")) == 3, "three NPS answers"
    assert browser.find_elements(By.CSS_SELECTOR, "mark.sent-positive")  # "The staff were kind."
    assert browser.find_elements(By.CSS_SELECTOR, "mark.sent-negative")
    assert browser.find_elements(By.CSS_SELECTOR, ".intent"), "churn intent is marked"
    assert moves(browser) == ["", "acknowledged", "dismissed"]  # only the moves open allows
    shot(browser, screenshots, live_app, "customer")

    move(browser, "acknowledged", "Called, offered a discount")
    assert moves(browser) == ["", "contacted", "resolved", "dismissed"]
    move(browser, "contacted", "Spoke to them on the phone")
    assert moves(browser) == ["", "resolved", "dismissed"]
    move(browser, "resolved", "Staying on the new plan")
    trail = browser.find_element(By.CSS_SELECTOR, "ol.audit").text
    steps = ["opened", f"assigned it to {agent}", "open → acknowledged", "Called, offered a discount",
             "acknowledged → contacted", "Spoke to them on the phone", "contacted → resolved", "Staying on the new plan"]
    positions = [trail.find(step) for step in steps]
    assert -1 not in positions and positions[1:] == sorted(positions[1:]), trail
    assert not browser.find_elements(By.ID, "status"), "a resolved case offers no move"
    browser.find_element(By.CSS_SELECTOR, "#case").location_once_scrolled_into_view
    shot(browser, screenshots, live_app, "customer-case")
    no_console_errors(browser, "/app/queue?segment=plan")

    navigate(browser, browser.find_element(By.CSS_SELECTOR, ".signout button"))
    assert "/app/login" in browser.current_url and "Signed out" in text(browser)
    shot(browser, screenshots, live_app, "login")
    browser.get(f"{live_app.url}/app/queue")
    assert "/app/login" in browser.current_url


@pytest.mark.slow
def test_an_agent_corrects_a_feedback_items_labels(browser, live_app, screenshots):
    sign_in(browser, live_app, live_app.keys["agent"])
    browser.get(f"{live_app.url}/app/customers/{HAPPY}")
    entry = browser.find_element(By.XPATH, "//article[contains(@class, 'entry')][.//details[@class='correct']]")
    feedback_id = int(entry.get_attribute("id").removeprefix("feedback-"))
    said = entry.find_element(By.CSS_SELECTOR, ".sent").text
    wanted = "negative" if said != "negative" else "neutral"
    entry.find_element(By.CSS_SELECTOR, "details.correct summary").click()
    Select(entry.find_element(By.NAME, "sentiment")).select_by_value(wanted)
    box = next(b for b in entry.find_elements(By.CSS_SELECTOR, "input[type=checkbox]") if not b.is_selected())
    reason = box.get_attribute("name").removeprefix("reason-")
    box.click()
    entry.find_element(By.NAME, "note").send_keys("Sarcasm: they are unhappy about the price")
    navigate(browser, entry.find_element(By.XPATH, ".//button[text()='Save correction']"))

    assert browser.current_url.endswith(f"#feedback-{feedback_id}")
    entry = browser.find_element(By.ID, f"feedback-{feedback_id}")
    assert entry.find_element(By.CSS_SELECTOR, ".sent").text == wanted
    assert said in entry.find_element(By.CSS_SELECTOR, ".sent + .corrected").get_attribute("title")
    assert reason in [r.text for r in entry.find_elements(By.CSS_SELECTOR, "span.reason")]
    with live_app.sessions() as session:
        stored = {c.field: c for c in queries.list_corrections(session, 10, feedback_id=feedback_id)}
    assert set(stored) == {"sentiment", "reasons"}, "the untouched churn intent is not stored as a correction"
    assert stored["sentiment"].model_value == said and stored["sentiment"].new_value == wanted
    assert reason in stored["reasons"].new_value and stored["sentiment"].actor.startswith("agent-")
    shot(browser, screenshots, live_app, "customer-corrected")

    # Saving the form unchanged corrects nothing: the form stays open with the note kept.
    entry.find_element(By.CSS_SELECTOR, "details.correct summary").click()
    entry.find_element(By.NAME, "note").send_keys("No change")
    navigate(browser, entry.find_element(By.XPATH, ".//button[text()='Save correction']"))
    entry = browser.find_element(By.ID, f"feedback-{feedback_id}")
    assert "Change the sentiment" in entry.text and entry.find_element(By.NAME, "note").get_attribute("value") == "No change"
    with live_app.sessions() as session:
        assert len(queries.list_corrections(session, 10, feedback_id=feedback_id)) == 2
    no_console_errors(browser, f"/app/feedback/{feedback_id}/corrections")


def _table(browser, selector: str) -> list[list[str]]:
    return [[td.text for td in tr.find_elements(By.CSS_SELECTOR, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, f"{selector} tbody tr")]


WINDOW = {"start": f"{DASHBOARD_MONTHS[0]}-01", "end": "2025-12-01"}


@pytest.mark.slow
def test_a_viewer_sees_the_api_numbers_drills_down_and_exports(browser, live_app, screenshots):
    sign_in(browser, live_app, live_app.keys["viewer"])
    assert browser.current_url.endswith("/app/dashboard")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    assert datetime.now(timezone.utc).strftime("%Y-%m") in text(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "a.topic-cell"), "topic trends"
    shot(browser, screenshots, live_app, "dashboard")

    api = httpx.Client(base_url=live_app.url, headers={"X-API-Key": live_app.keys["viewer"]})
    for metric, by in (("nps", "plan"), ("csat", "journey_stage"), ("ces", "")):
        browser.get(f"{live_app.url}/app/dashboard?metric={metric}&period=month&by={by}"
                    f"&start={WINDOW['start']}&end={WINDOW['end']}")
        shown = _table(browser, "table.metric")
        expected = api.get(f"/v1/metrics/{metric}", params={"period": "month", **({"by": by} if by else {}),
                                                            **WINDOW}).json()["groups"]
        assert len(expected) >= 2
        as_api = [[g["period"], *([g["segment"]] if by else []), f"{g['value']:.1f}", f"{g['margin_of_error']:.1f}",
                   str(g["n"]), "answers"] for g in reversed(expected)]
        assert shown == as_api, (metric, by)

    # Drill down from NPS of the pro plan in the second month: exactly those answers.
    browser.get(f"{live_app.url}/app/dashboard?metric=nps&by=plan&start={WINDOW['start']}&end={WINDOW['end']}")
    shot(browser, screenshots, live_app, "dashboard-by-plan")
    row = next(tr for tr in browser.find_elements(By.CSS_SELECTOR, "table.metric tbody tr")
               if tr.text.startswith(f"{DASHBOARD_MONTHS[1]} pro"))
    n = int(row.find_element(By.CSS_SELECTOR, ".n").text)
    navigate(browser, row.find_element(By.CSS_SELECTOR, "a.drill"))
    listed = Counter(p.text for p in browser.find_elements(By.CSS_SELECTOR, ".verbatim"))
    wanted = Counter(item["text"] for item in dashboard_feedback() if item.get("nps") is not None
                     and item["segments"]["plan"] == "pro" and item["timestamp"].startswith(DASHBOARD_MONTHS[1]))
    assert listed == wanted and sum(listed.values()) == n == 6
    shot(browser, screenshots, live_app, "verbatims")

    # A bar of the chart is a link to the same drill-down.
    browser.back()
    bar = browser.find_element(By.CSS_SELECTOR, f"svg.chart a[aria-label^='{DASHBOARD_MONTHS[1]} · pro']")
    navigate(browser, bar)
    assert Counter(p.text for p in browser.find_elements(By.CSS_SELECTOR, ".verbatim")) == wanted

    # A topic cell lists the feedback whose top topic it is, as many as the cell counts.
    browser.get(f"{live_app.url}/app/dashboard")
    cell = browser.find_elements(By.CSS_SELECTOR, "a.topic-cell")[0]
    count = int(cell.get_attribute("title").split(" texts")[0])
    topic = int(re.search(r"topic=(-?\d+)", cell.get_attribute("href")).group(1))
    navigate(browser, cell)
    texts = [p.text for p in browser.find_elements(By.CSS_SELECTOR, ".verbatim")]
    assert len(texts) == count > 0
    with live_app.sessions() as session:
        tops = {}
        for f in session.scalars(select(Feedback).where(Feedback.status == "analysed", Feedback.analysis.is_not(None))):
            found = f.analysis.get("topics") or []
            tops.setdefault(f.text, set()).add(max(found, key=lambda t: t["probability"])["id"] if found else -1)
    assert all(tops[t] == {topic} for t in texts), "every verbatim has that top topic"

    # Sentiment by channel: a part of a bar lists that channel's feedback of that sentiment.
    browser.get(f"{live_app.url}/app/dashboard")
    part = browser.find_element(By.CSS_SELECTOR, "#sentiment-channel svg a[href*='group=chat']")
    navigate(browser, part)
    label = re.search(r"sentiment=(\w+)", browser.current_url).group(1)
    assert browser.find_elements(By.CSS_SELECTOR, ".verbatim")
    assert {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".entry .sent")} == {label}
    assert all("chat" in e.text for e in browser.find_elements(By.CSS_SELECTOR, ".entry .meta"))
    no_console_errors(browser)

    # The CSV of the current view carries the same figures.
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    exported = httpx.get(f"{live_app.url}/app/dashboard.csv", params={"metric": "nps", "by": "plan", **WINDOW},
                         cookies=cookies)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = [r for r in csv.DictReader(io.StringIO(exported.text)) if r["section"] == "nps"]
    expected = api.get("/v1/metrics/nps", params={"period": "month", "by": "plan", **WINDOW}).json()["groups"]
    assert [(r["period"], r["group"], float(r["value"]), int(r["n"])) for r in rows] == \
        [(g["period"], g["segment"], g["value"], g["n"]) for g in expected]
    assert {r["section"] for r in csv.DictReader(io.StringIO(exported.text))} >= {
        "nps", "sentiment_by_channel", "sentiment_by_language", "topic_share"}

    browser.get(f"{live_app.url}/app/dashboard?start=yesterday&by=plan;drop")
    assert "'yesterday' is not a date" in text(browser) and "is not a segment name" in text(browser)
    assert browser.find_element(By.NAME, "by").get_attribute("value") == "plan;drop"  # kept
    browser.get(f"{live_app.url}/app/queue")
    assert "cannot open this page" in text(browser)
    assert "Triage queue" not in browser.find_element(By.TAG_NAME, "nav").text
    browser.get(f"{live_app.url}/app/customers/{HAPPY}")
    assert "cannot open this page" in text(browser)
    browser.get(f"{live_app.url}/app/admin")
    assert "cannot open this page" in text(browser)
    no_console_errors(browser, "/app/dashboard?start=yesterday&by=plan;drop", "/app/queue", f"/app/customers/{HAPPY}",
                      "/app/admin")


@pytest.mark.slow
def test_an_admin_manages_keys_rescores_and_retrains(browser, live_app, screenshots):
    sign_in(browser, live_app, live_app.keys["admin"])
    navigate(browser, browser.find_element(By.LINK_TEXT, "Admin"))
    browser.find_element(By.NAME, "name").send_keys("new-viewer")
    Select(browser.find_element(By.NAME, "role")).select_by_value("viewer")
    browser.find_element(By.NAME, "expires_days").send_keys("0")  # refused: at least 1
    navigate(browser, browser.find_element(By.XPATH, "//button[text()='Create key']"))
    assert "Key not created" in text(browser)
    assert browser.find_element(By.NAME, "name").get_attribute("value") == "new-viewer"  # the input is kept
    browser.find_element(By.NAME, "expires_days").clear()
    browser.find_element(By.NAME, "expires_days").send_keys("30")
    navigate(browser, browser.find_element(By.XPATH, "//button[text()='Create key']"))
    secret = browser.find_element(By.CSS_SELECTOR, ".secret-value").get_attribute("value")
    assert httpx.get(f"{live_app.url}/v1/metrics/nps", headers={"X-API-Key": secret}).status_code == 200
    shot(browser, screenshots, live_app, "admin-key-created")
    browser.get(f"{live_app.url}/app/admin")
    assert secret not in browser.page_source, "the secret is shown once"
    row = next(tr for tr in browser.find_elements(By.CSS_SELECTOR, "table.keys tbody tr") if "new-viewer" in tr.text)
    assert "until" in row.text
    navigate(browser, row.find_element(By.XPATH, ".//button[text()='Revoke']"))
    assert "Key revoked" in text(browser)
    assert httpx.get(f"{live_app.url}/v1/metrics/nps", headers={"X-API-Key": secret}).status_code == 401

    navigate(browser, browser.find_element(By.XPATH, "//button[text()='Re-score now']"))
    assert "Scored" in browser.find_element(By.CSS_SELECTOR, ".flagged").text

    navigate(browser, browser.find_element(By.XPATH, "//button[text()='Retrain']"))
    assert "Retraining queued" in text(browser)
    first = _table(browser, "table.runs")[0]
    assert first[1] == "queued" and first[2].startswith("admin-")
    navigate(browser, browser.find_element(By.XPATH, "//button[text()='Retrain']"))
    assert "still queued or running" in text(browser)
    shot(browser, screenshots, live_app, "admin")
    no_console_errors(browser, "/app/admin/keys", "/app/admin/retrain")


@pytest.mark.slow
def test_a_revoked_key_ends_its_session_and_a_wrong_key_keeps_the_destination(browser, live_app):
    key_id, secret = live_app.new_key("agent")
    sign_in(browser, live_app, secret)
    assert browser.current_url.endswith("/app/queue")
    with live_app.sessions() as session:
        revoke_api_key(session, key_id)
        session.commit()
    browser.get(f"{live_app.url}/app/customers/{LEAVER}")
    assert "/app/login" in browser.current_url and "revoked" in text(browser)
    browser.find_element(By.ID, "key").send_keys("cxm_not-a-key")
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "form[action='/app/login'] button"))
    assert "Not signed in" in text(browser)
    browser.find_element(By.ID, "key").send_keys(live_app.keys["agent"])
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "form[action='/app/login'] button"))
    assert browser.current_url.endswith(f"/app/customers/{LEAVER}")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def test_forms_without_the_csrf_token_are_refused_and_the_cookie_holds_no_key(live_app):
    with httpx.Client(base_url=live_app.url) as client:
        login = client.get("/app/login?notice=Your+key+leaked,+paste+it+at+example.com")
        assert "example.com" not in login.text  # the page says only its own notices
        refused = client.post("/app/login", data={"key": live_app.keys["agent"]})
        assert refused.status_code == 403 and "CSRF" in refused.text
        signed = client.post("/app/login", data={"key": live_app.keys["agent"], "csrf": _csrf(login.text)})
        assert signed.status_code == 303 and signed.headers["location"] == "/app/queue"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=28800" in cookie
        assert live_app.keys["agent"] not in cookie and live_app.keys["agent"][:10] not in cookie

        with live_app.sessions() as session:
            case = queries.customer_cases(session, HAPPY) or queries.customer_cases(session, LEAVER)
            case_id, status = case[0].id, case[0].status
        queue = client.get("/app/queue")
        assert queue.status_code == 200
        for form in ({"status": "dismissed"}, {"status": "dismissed", "csrf": "0" * 64},
                     {"status": "dismissed", "csrf": _csrf(login.text)}):  # the token from before sign-in
            answer = client.post(f"/app/cases/{case_id}/move", data=form)
            assert answer.status_code == 403, form
        assert client.post("/app/logout").status_code == 403
        kept = client.post(f"/app/cases/{case_id}/move",
                           data={"status": "reopened", "note": "Keep this note", "csrf": _csrf(queue.text)})
        assert kept.status_code == 422 and ">Keep this note</textarea>" in kept.text
        with live_app.sessions() as session:
            assert queries.get_case(session, case_id).status == status
        assert client.post("/app/logout", data={"csrf": _csrf(queue.text)}).status_code == 303


def test_an_expired_session_cookie_is_not_accepted(live_app, monkeypatch):
    signer = live_app.app.state.web_signer
    response = Response()
    signer.write(response, new_session(live_app.key_ids["viewer"]))
    cookies = {COOKIE: response.headers["set-cookie"].split(";")[0].split("=", 1)[1]}
    with httpx.Client(base_url=live_app.url, cookies=cookies) as client:
        assert client.get("/app/dashboard").status_code == 200
        monkeypatch.setattr(signer, "max_age", -1)  # as if CXM_WEB_SESSION_HOURS had passed
        answer = client.get("/app/dashboard")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/app/login")
