"""The API as a real process (``cxm serve`` on a free port) that a fault test or benchmark can kill -9
and start again; and a client that re-sends each feedback batch until it gets a 2xx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.throwaway_postgres import free_port

CXM = "import sys; from api.cli import app; sys.argv[0] = 'cxm'; app()"
"""The ``cxm`` entry point, run by this interpreter from the working directory's checkout."""


class ApiProcess:
    """``cxm serve`` with ``env`` (``CXM_*`` settings) added to this process's environment."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None):
        self.env = {**os.environ, **env}
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180.0) -> float:
        """Start and wait until ``/readyz`` answers 200; the seconds it took."""
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-c", CXM, "serve", "--port", str(self.port)],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"cxm serve exited {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"cxm serve not ready after {timeout_s} s:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no shutdown, requests in flight are cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class RetryingClient:
    """Sends each batch until a 2xx; counts what it met on the way (503s and their latency, cut connections)."""

    base: str
    key: str
    acknowledged: set[str] = field(default_factory=set)
    stored_reports: int = 0
    unavailable: int = 0
    slowest_503_s: float = 0.0
    other_errors: dict[str, int] = field(default_factory=dict)

    def send(self, items: list[dict], give_up_s: float = 300.0) -> None:
        deadline = time.monotonic() + give_up_s
        with httpx.Client(base_url=self.base, headers={"X-API-Key": self.key}, timeout=30) as client:
            while True:
                assert time.monotonic() < deadline, f"no 2xx for a batch in {give_up_s} s: {self.other_errors}"
                started = time.monotonic()
                try:
                    response = client.post("/v1/feedback", json={"items": items})
                except httpx.HTTPError as exc:  # the API process is down or was killed mid-request
                    self._count(type(exc).__name__)
                    time.sleep(0.2)
                    continue
                if response.is_success:
                    break
                if response.status_code == 503:
                    self.unavailable += 1
                    self.slowest_503_s = max(self.slowest_503_s, time.monotonic() - started)
                    assert response.headers.get("Retry-After"), response.headers
                else:
                    self._count(str(response.status_code))
                time.sleep(0.2)
        body = response.json()
        statuses = {item["status"] for item in body["items"]}
        assert statuses <= {"stored", "duplicate"}, body
        self.stored_reports += body["stored"]
        self.acknowledged.update(item["external_id"] for item in items)

    def _count(self, kind: str) -> None:
        self.other_errors[kind] = self.other_errors.get(kind, 0) + 1
