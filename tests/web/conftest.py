"""A live app (uvicorn on a free port, a fresh SQLite database) with keys, scored feedback and a
headless Chromium (Debian's ``chromium`` and ``chromium-driver``) to drive it."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.auth import create_api_key
from api.runtime import Models
from churn.model import ChurnModel
from tests.api.conftest import make_settings
from tests.throwaway_postgres import free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LEAVER = "web-leaver"
HAPPY = "web-happy"


@dataclass
class LiveApp:
    url: str
    app: object
    keys: dict[str, str]
    key_ids: dict[str, int]

    def sessions(self):
        return self.app.state.runtime.sessions()

    def new_key(self, role: str) -> tuple[int, str]:
        with self.sessions() as session:
            key, secret = create_api_key(session, f"{role}-{uuid.uuid4().hex[:6]}", role)
            session.commit()
            return key.id, secret


def _feedback(now: datetime) -> list[dict]:
    """A customer saying they will leave and a happy one, three NPS answers each."""
    items = []
    for customer, nps, text in ((LEAVER, 0, "The staff were kind. But I will cancel and switch to a competitor, "
                                 "far too expensive."), (HAPPY, 10, "Love it, great value.")):
        for j in range(3):
            items.append({"kind": "survey", "external_id": f"{customer}-s{j}", "customer_id": customer,
                          "channel": "survey", "timestamp": (now - timedelta(days=1 + 10 * j)).isoformat(),
                          "nps": max(0, nps - j) if nps else j, "text": text, "reasons": ["price"],
                          "segments": {"plan": "pro", "region": "north"}})
    items.append({"kind": "ticket", "external_id": f"{LEAVER}-t", "customer_id": LEAVER, "channel": "email",
                  "timestamp": (now - timedelta(days=3)).isoformat(), "text": "It broke again."})
    return items


@pytest.fixture(scope="session")
def web_models(churn_analyzer) -> Models:
    """The full default analyzer (sentence sentiment, reasons, churn intent are on the pages) and the
    shipped churn model."""
    return Models(analyzer=churn_analyzer, churn_model=ChurnModel.load())


@pytest.fixture(scope="session")
def live_app(settings, web_models, tmp_path_factory):
    app = create_app(make_settings(settings, f"sqlite:///{tmp_path_factory.mktemp('web') / 'cxm.db'}"),
                     models=web_models)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    live = LiveApp(f"http://127.0.0.1:{port}", app, {}, {})
    for role in ("viewer", "agent", "ingest", "admin"):
        live.key_ids[role], live.keys[role] = live.new_key(role)
    stored = httpx.post(f"{live.url}/v1/feedback", headers={"X-API-Key": live.keys["ingest"]},
                        json={"items": _feedback(datetime.now(timezone.utc))}, timeout=60)
    assert stored.status_code in (200, 201) and stored.json()["stored"] == 7, stored.text
    flagged = httpx.post(f"{live.url}/v1/admin/flag", headers={"X-API-Key": live.keys["admin"]}, timeout=60)
    assert flagged.status_code == 200 and flagged.json()["cases_opened"] >= 1, flagged.text
    yield live
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
