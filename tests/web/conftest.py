"""A live app (uvicorn on a free port) on a fresh SQLite and a fresh PostgreSQL database, with keys,
scored feedback with topics, and a headless Chromium (Debian's ``chromium`` and ``chromium-driver``)
to drive it; screenshots go to the session's temporary directory."""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.auth import create_api_key
from api.runtime import Models
from churn.model import ChurnModel
from nlp.analyzer import FeedbackAnalyzer
from nlp.topics.config import TopicModelConfig
from nlp.topics.model import TopicModel
from nlp.topics.tagger import TopicTagger
from tests.api.conftest import make_settings, postgres_database
from tests.throwaway_postgres import free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LEAVER = "web-leaver"
HAPPY = "web-happy"
PLANS = ("pro", "basic")
DASHBOARD_MONTHS = ("2025-10", "2025-11")
DASHBOARD_TEXTS = (
    "I was charged twice on my invoice and the bill is wrong.",
    "The invoice was wrong again, billing is a mess.",
    "Fakturan var fel och jag debiterades två gånger.",
    "The router delivery took three weeks and arrived broken.",
    "Leveransen var sen och paketet kom aldrig fram.",
    "Support was friendly and solved my issue quickly.",
    "Great support team, they answered within minutes.",
    "Kundtjänsten var snabb och mycket trevlig.",
)


@dataclass
class LiveApp:
    url: str
    app: object
    keys: dict[str, str]
    key_ids: dict[str, int]
    database: str

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


def dashboard_feedback() -> list[dict]:
    """Two months of answers from six customers per plan (so every plan shows on its own), in two
    channels and languages, with NPS, CSAT, CES and a journey stage."""
    items = []
    for p, plan in enumerate(PLANS):
        for i in range(6):
            customer = f"dash-{plan}-{i}"
            for m, month in enumerate(DASHBOARD_MONTHS):
                k = p * 12 + i * 2 + m
                items.append({"kind": "survey", "external_id": f"{customer}-{month}", "customer_id": customer,
                              "channel": "survey", "timestamp": f"{month}-{3 + 4 * i:02d}T10:00:00Z",
                              "nps": (5 + 3 * k) % 11, "csat": 1 + k % 5, "ces": 1 + (2 * k) % 7,
                              "journey_stage": ("onboarding", "billing")[k % 2],
                              "text": DASHBOARD_TEXTS[k % len(DASHBOARD_TEXTS)],
                              "segments": {"plan": plan, "region": "south"}})
            items.append({"kind": "social", "external_id": f"{customer}-chat", "customer_id": customer,
                          "channel": "chat", "timestamp": f"{DASHBOARD_MONTHS[1]}-{20 + i}T09:00:00Z",
                          "text": DASHBOARD_TEXTS[(p * 6 + i + 3) % len(DASHBOARD_TEXTS)]})
    return items


@pytest.fixture(scope="session")
def web_models(churn_analyzer) -> Models:
    """The full default analyzer (sentence sentiment, reasons, churn intent are on the pages) plus a
    small topic model fitted on the pages' texts, and the shipped churn model."""
    texts = list(DASHBOARD_TEXTS)
    encoder = churn_analyzer.encoder
    config = TopicModelConfig(reduction="pca", n_components=4, clustering="kmeans", n_topics=3, min_topic_size=2,
                              keyword_candidates=10)
    topic_model = TopicModel(config).fit(texts, encoder.encode(texts))
    analyzer = FeedbackAnalyzer(encoder, churn_analyzer.language_detector, sentiment=churn_analyzer.sentiment,
                                sentence_splitter=churn_analyzer.sentence_splitter, reasons=churn_analyzer.reasons,
                                topics=TopicTagger(topic_model), signals=churn_analyzer.signals)
    return Models(analyzer=analyzer, churn_model=ChurnModel.load())


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where every page's screenshot is written (the session's pytest temporary directory)."""
    return tmp_path_factory.mktemp("web-screenshots")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def live_app(request, settings, web_models, tmp_path_factory):
    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path_factory.mktemp('web') / 'cxm.db'}" if request.param == "sqlite"
               else stack.enter_context(postgres_database()))
        app = create_app(make_settings(settings, url), models=web_models)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.05)
        live = LiveApp(f"http://127.0.0.1:{port}", app, {}, {}, request.param)
        for role in ("viewer", "agent", "ingest", "admin"):
            live.key_ids[role], live.keys[role] = live.new_key(role)
        items = _feedback(datetime.now(timezone.utc)) + dashboard_feedback()
        stored = httpx.post(f"{live.url}/v1/feedback", headers={"X-API-Key": live.keys["ingest"]},
                            json={"items": items}, timeout=120)
        assert stored.status_code in (200, 201) and stored.json()["stored"] == len(items), stored.text
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
                "--window-size=1280,800", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
