"""The node relying party (rp.mjs, on panva's openid-client) as seen from
pytest: each library call is a JSON route on 127.0.0.1."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 30  # the device poll waits the server's interval (RFC 8628 §3.5)


class NodeRP:
    """The node relying party: each openid-client call is a JSON route."""

    def __init__(self, issuer: str, log_dir: Path):
        if not (HERE / "node_modules" / "openid-client").is_dir():
            # Never a skip: make test installs them (npm ci) before pytest.
            pytest.fail("run `npm ci --prefix tests/conformance` first")
        self.log = open(log_dir / "conformance-rp.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["node", str(HERE / "rp.mjs"), issuer],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        first_line = self.proc.stdout.readline()
        if not first_line:
            raise RuntimeError(f"the node RP did not start; see {self.log.name}")
        self.url = f"http://127.0.0.1:{json.loads(first_line)['port']}"
        self.redirect_uri = self.url + "/callback"
        self.post_logout_redirect_uri = self.url + "/signed-out"

    def call(self, route: str, **body) -> dict:
        """POST ``body`` to ``route``; the library call must succeed."""
        response = requests.post(self.url + route, json=body, timeout=TIMEOUT)
        assert response.status_code == 200, (route, response.text)
        return response.json()

    def refused(self, route: str, **body) -> dict:
        """POST ``body`` to ``route``; the library call must fail. Returns
        what failed: ``error`` holds the server's OAuth error code."""
        response = requests.post(self.url + route, json=body, timeout=TIMEOUT)
        assert response.status_code == 400, (route, response.text)
        return response.json()["error"]

    def result(self, state: str) -> dict:
        """What the redirect URI made of the authorization response."""
        response = requests.get(
            self.url + "/result", params={"state": state}, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        return response.json()

    def activity(self) -> dict:
        """Every request the library made (fetched), the URLs it built for the
        browser (built), and what reached the post-logout redirect URI."""
        return requests.get(self.url + "/log", timeout=TIMEOUT).json()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stdout.close()
        self.log.close()


@dataclass
class RegisteredClient:
    client_id: str
    secret: str | None
    auth_method: str
    server_metadata: dict
