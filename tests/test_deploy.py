"""The production server, deploy/serve.py (granian), as the Docker image
runs it: it serves, with threads, empties the metrics directory of an
earlier run, and its logs never carry an authorization code or an emailed
link."""

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
        [sys.executable, "deploy/serve.py", *extra],
        cwd=ROOT,
        env={**os.environ, **env, "GRANIAN_HOST": "127.0.0.1",
             "GRANIAN_PORT": str(port), "GRANIAN_WORKERS": "1",
             "GRANIAN_BLOCKING_THREADS": "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not start")


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


def test_production_server_serves_and_logs_no_code_or_link(app, base_env, tmp_path):
    secret = secrets.token_urlsafe(24)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_123.db").write_bytes(b"an earlier run's counters")
    env = {**base_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    output = serve_and_log(env, tmp_path / "server.log", secret)
    assert "WSGI" in output  # granian says which interface it serves
    assert "Traceback" not in output
    assert secret not in output
    assert not (metrics / "counter_123.db").exists()
    # The control: granian's access log, had it been on, prints the reset
    # link's path (its default format leaves the query out).
    control = serve_and_log(env, tmp_path / "control.log", secret, "--access-log")
    assert f"/password/reset/{secret}" in control


def test_operator_settings_win_over_the_defaults():
    """Every GRANIAN_* variable an operator sets is granian's to read; the
    script only fills in those left unset."""
    from deploy.serve import environment

    env = environment({"GRANIAN_WORKERS": "3", "GRANIAN_PORT": "9000"})
    assert env["GRANIAN_WORKERS"] == "3"
    assert env["GRANIAN_PORT"] == "9000"
    assert env["GRANIAN_INTERFACE"] == "wsgi"
    assert env["GRANIAN_LOG_ACCESS_ENABLED"] == "false"
