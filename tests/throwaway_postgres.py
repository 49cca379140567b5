"""A PostgreSQL cluster of its own (initdb + pg_ctl in a temporary directory, on a free port) that a
fault test or benchmark may stop, kill -9 and start again without touching the shared server."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg


def _bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise RuntimeError("pg_ctl not found: install PostgreSQL's server binaries (initdb, pg_ctl)")
    return Path(versions[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    """``start``, ``stop`` (immediate: as a crash), ``kill`` (SIGKILL to the postmaster), ``remove``.

    PostgreSQL refuses to run as root; as root the cluster belongs to the ``postgres`` user.
    """

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="cxm-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as, str(self.bin / tool), *args], check=True, capture_output=True, text=True)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start, waiting until it accepts connections; retried while a killed server's backends exit."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "20", "start")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start:\n{self.log.read_text()[-2000:]}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``: every backend dies at once, no checkpoint (a crash, recovered at start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL to the postmaster, then to its backends, as an out-of-memory killer would."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for victim in (pid, *map(int, children)):
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def create_database(self) -> str:
        """A new empty database in this cluster; its SQLAlchemy URL."""
        name = f"cxm_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def running(self) -> bool:
        return subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
                              capture_output=True).returncode == 0

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
