"""The live server under test: gunicorn on 127.0.0.1, LATCHKEY_* settings
from the environment, no Redis (the in-memory rate limiter)."""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latchkey_env(database_url: str, port: int) -> dict:
    """The settings shared by the in-process app (seeding) and the server."""
    return {
        "LATCHKEY_ENV": "testing",
        "LATCHKEY_ISSUER": f"http://127.0.0.1:{port}",
        "LATCHKEY_DATABASE_URL": database_url,
        "LATCHKEY_SECRET_KEY": secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "LATCHKEY_DEMO_DATA": "false",
        "LATCHKEY_RATELIMIT_PREFIX": f"latchkey-bench-{secrets.token_hex(4)}",
    }


class Server:
    """``gunicorn -w WORKERS [--threads THREADS] app.wsgi:app``; threads
    > 1 selects the gthread worker (keep-alive), 1 the sync worker."""

    def __init__(self, env: dict, port: int, workers: int, threads: int, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(workers),
            *(["--threads", str(threads)] if threads > 1 else []),
            "-b",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "2",
            "--log-level",
            "warning",
            "app.wsgi:app",
        ]
        # Only our LATCHKEY_* settings: no Redis URL leaks in from the shell.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**clean, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log.name}")
            try:
                requests.get(self.url + "/healthz", timeout=5).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start; see {self.log.name}")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in children.read_text().split()]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
