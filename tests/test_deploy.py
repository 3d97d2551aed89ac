"""The production server configuration, deploy/gunicorn.conf.py, as the
Docker image runs it: it serves, with threads, and its logs never carry an
authorization code or an emailed link."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import requests

from tests.conftest import ROOT, free_port


def start(env: dict, log, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py",
         *extra, "app.wsgi:app"],
        cwd=ROOT,
        env={**os.environ, **env, "GUNICORN_BIND": f"127.0.0.1:{port}",
             "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited"
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gunicorn did not start")


def serve_and_log(env: dict, log_path, secret: str, *extra: str) -> str:
    """Start the server, ask for a code callback, a reset link and the
    metadata, stop it; its whole output."""
    with open(log_path, "w") as log:
        proc, url = start(env, log, *extra)
        try:
            # RFC 6749 §4.1.2: a code travels in a query; a reset link in a path.
            callback = requests.get(f"{url}/authorize?code={secret}", timeout=10)
            link = requests.get(f"{url}/password/reset/{secret}", timeout=10)
            discovery = requests.get(
                f"{url}/.well-known/openid-configuration", timeout=10
            )
        finally:
            proc.terminate()
            proc.wait(15)
    assert discovery.status_code == 200
    assert discovery.json()["issuer"] == env["LATCHKEY_ISSUER"]
    assert callback.status_code < 500
    assert link.status_code < 500
    return log_path.read_text()


def test_production_config_serves_and_logs_no_code_or_link(app, base_env, tmp_path):
    secret = secrets.token_urlsafe(24)
    output = serve_and_log(base_env, tmp_path / "gunicorn.log", secret)
    assert "Using worker: gthread" in output  # the config was read
    assert "Traceback" not in output
    assert secret not in output
    # The control: gunicorn's access log, had it been on, prints both.
    control = serve_and_log(
        base_env, tmp_path / "control.log", secret, "--access-logfile", "-"
    )
    assert control.count(secret) >= 2
