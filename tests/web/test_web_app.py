"""The web app in a real headless Chromium against a live server, plus its CSRF and cookie rules over HTTP."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from api.auth import revoke_api_key
from api.db import queries
from api.web.session import COOKIE, new_session
from starlette.responses import Response
from tests.web.conftest import HAPPY, LEAVER


def navigate(browser, element) -> None:
    """Click ``element`` (or press Enter on it) and wait until the next page replaced this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    element() if callable(element) else element.click()
    WebDriverWait(browser, 10).until(expected_conditions.staleness_of(page))


def sign_in(browser, live_app, key: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{live_app.url}/app/login")
    browser.find_element(By.ID, "key").send_keys(key)
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "form[action='/app/login'] button"))


def text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "main").text


@pytest.mark.slow
def test_agent_works_a_customer_from_the_queue_to_the_audit_trail(browser, live_app):
    sign_in(browser, live_app, live_app.keys["agent"])
    assert browser.current_url.endswith("/app/queue")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "a.customer-link").text for r in rows][0] == LEAVER
    leaver = rows[0]
    assert "high" in leaver.text.lower() and "open" in leaver.text and "unassigned" in leaver.text
    assert leaver.find_elements(By.CSS_SELECTOR, ".why li"), "the plain-words why is shown"
    assert leaver.find_element(By.CSS_SELECTOR, ".sent").text == "negative"

    navigate(browser, leaver.find_element(By.XPATH, ".//button[text()='Assign to me']"))
    agent = browser.find_element(By.CSS_SELECTOR, ".who").text.split(" · ")[0]
    leaver = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")[0]
    assert leaver.find_element(By.CSS_SELECTOR, ".assignee").text == agent
    assert not leaver.find_elements(By.XPATH, ".//button[text()='Assign to me']")

    browser.get(f"{live_app.url}/app/queue?assignee={agent}")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.customer-link")] == [LEAVER]
    browser.get(f"{live_app.url}/app/queue?tier=low")
    assert LEAVER not in text(browser)

    # Keyboard only: Tab reaches the first customer link, Enter opens it.
    browser.get(f"{live_app.url}/app/queue")
    for _ in range(30):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if "customer-link" in (browser.switch_to.active_element.get_attribute("class") or ""):
            break
    else:
        pytest.fail("no customer link is reachable with Tab")
    navigate(browser, lambda: browser.switch_to.active_element.send_keys(Keys.ENTER))
    assert browser.current_url.endswith(f"/app/customers/{LEAVER}")

    page = text(browser)
    assert "plan" in page and "pro" in page and "high" in page.lower()
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart circle.dot"), "the NPS history chart"
    assert browser.find_elements(By.CSS_SELECTOR, "mark.sent-positive")  # "The staff were kind."
    assert browser.find_elements(By.CSS_SELECTOR, "mark.sent-negative")
    assert browser.find_elements(By.CSS_SELECTOR, ".intent"), "churn intent is marked"
    offered = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "status")).options]
    assert offered == ["", "acknowledged", "dismissed"]  # only the moves open allows

    Select(browser.find_element(By.ID, "status")).select_by_value("acknowledged")
    browser.find_element(By.ID, "note").send_keys("Called, offered a discount")
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "form.move button"))
    trail = browser.find_element(By.CSS_SELECTOR, "ol.audit").text
    assert "open → acknowledged" in trail and "Called, offered a discount" in trail
    assert f"assigned it to {agent}" in trail
    offered = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "status")).options]
    assert offered == ["", "contacted", "resolved", "dismissed"]

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe

    navigate(browser, browser.find_element(By.CSS_SELECTOR, ".signout button"))
    assert "/app/login" in browser.current_url and "Signed out" in text(browser)
    browser.get(f"{live_app.url}/app/queue")
    assert "/app/login" in browser.current_url


@pytest.mark.slow
def test_a_viewer_sees_the_dashboard_but_not_the_queue(browser, live_app):
    sign_in(browser, live_app, live_app.keys["viewer"])
    assert browser.current_url.endswith("/app/dashboard")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    assert month in text(browser)
    browser.get(f"{live_app.url}/app/queue")
    assert "cannot open this page" in text(browser)
    assert "Triage queue" not in browser.find_element(By.TAG_NAME, "nav").text
    browser.get(f"{live_app.url}/app/customers/{HAPPY}")
    assert "cannot open this page" in text(browser)


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
