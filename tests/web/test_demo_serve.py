"""``cxm demo --serve``, the README's one command for newcomers, as a real process: a populated triage
desk and dashboard behind the keys it prints."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.api_process import CXM
from tests.throwaway_postgres import free_port


@pytest.mark.slow
def test_demo_serve_opens_a_populated_desk_and_dashboard(tmp_path):
    port, log = free_port(), tmp_path / "demo.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", CXM, "demo", "--serve", "--port", str(port),
                                    "--dir", str(tmp_path / "cxm-demo")], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not re.search(r"admin\s+cxm_", log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        keys = dict(re.findall(r"^\s+(agent|viewer|admin)\s+(cxm_\S+)$", log.read_text(), re.MULTILINE))
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)

        queue = httpx.get(f"{base}/v1/customers/at-risk", headers={"X-API-Key": keys["agent"]}).json()
        assert queue["total"] >= 10 and any(c["case"] for c in queue["items"])
        assert any(c["latest_feedback"] for c in queue["items"]), "the queue shows what customers wrote"
        viewer = {"X-API-Key": keys["viewer"]}
        nps = httpx.get(f"{base}/v1/metrics/nps", params={"period": "quarter"}, headers=viewer).json()
        assert len(nps["groups"]) >= 2 and sum(g["n"] for g in nps["groups"]) >= 50
        topics = httpx.get(f"{base}/v1/topics", headers=viewer).json()["items"]
        assert len([t for t in topics if t["topic_id"] != -1]) >= 3

        with httpx.Client(base_url=base) as browser:  # the web app's sign-in, as a browser does it
            login = browser.get("/app/login")
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', login.text).group(1)
            signed = browser.post("/app/login", data={"key": keys["agent"], "csrf": csrf})
            assert signed.status_code == 303 and signed.headers["location"] == "/app/queue"
            desk = browser.get("/app/queue")
            assert desk.status_code == 200 and desk.text.count('class="customer-link"') >= 10
    finally:
        process.terminate()
        process.wait(timeout=30)
