"""The first run: `flask dev-setup` prints a URL; opening it in a browser
and signing in with the printed demo account ends on the demo relying
party's page with the ID token's claims, verified against the JWKS. A
second `dev-setup --show` prints a URL that works again, resets nothing."""

import json
import os
import secrets
import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests

from tests.browser.console_helpers import assert_accessible, axe_script
from tests.conftest import ROOT, LiveServer, free_port
from tests.support.chromium import answer_consent, new_page, submit_sign_in


@pytest.fixture
def demo_server(app, base_env, log_dir):
    """A Latchkey with the demo on (LATCHKEY_DEMO_DATA), its own issuer and
    cookie names, on the test database."""
    port = free_port()
    env = {
        **base_env,
        "LATCHKEY_ISSUER": f"http://127.0.0.1:{port}",
        "LATCHKEY_DEMO_DATA": "true",
        "LATCHKEY_COOKIE_PREFIX": f"demo{secrets.token_hex(2)}",
    }
    server = LiveServer(env, port, log_dir)
    yield server, env
    server.stop()


def _dev_setup(env: dict, *args: str) -> dict[str, str]:
    """Run `flask dev-setup` as `make run` does (development mode); its
    printed fields."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "dev-setup", *args],
        cwd=ROOT,
        env={**os.environ, **env, "FLASK_APP": "app", "LATCHKEY_ENV": "development"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {
        key.strip(): value.strip()
        for key, value in (
            line.split(":", 1) for line in result.stdout.splitlines() if ":  " in line
        )
    }


def test_printed_url_ends_on_verified_claims(demo_server, chromium):
    server, env = demo_server
    with new_page(chromium, bypass_csp=True) as page:  # axe is an inline script
        printed = _dev_setup(env)
        assert printed["open"] == server.url + "/demo/start"
        password = printed["password"].split()[0]

        page.goto(printed["open"])
        page.wait_for_url(server.url + "/login?*")
        submit_sign_in(
            page, SimpleNamespace(email=printed["account"], password=password)
        )
        answer_consent(page)  # the demo app is a third party: it asks first
        page.wait_for_url(server.url + "/demo/callback?*")
        claims = json.loads(page.inner_text("#id-token-claims"))
        assert claims["iss"] == server.url
        assert claims["aud"] == "demo-rp"
        assert claims["email"] == printed["account"]
        assert claims["name"] == "Demo Person"
        assert "verified against" in page.inner_text("main")
        assert_accessible(page, axe_script(), "demo-rp", "desktop")
        page.set_viewport_size({"width": 390, "height": 844})
        assert_accessible(page, axe_script(), "demo-rp", "phone")
        tokens = json.loads(page.inner_text("#tokens"))
        assert tokens["token_type"] == "Bearer"
        assert tokens["refresh_token"]

        # Again, after a "restart": a URL that works, the same account, no
        # password shown (it is only stored hashed) and nothing reset.
        again = _dev_setup(env, "--show")
        assert again["open"] == printed["open"]
        assert password not in again["password"]
        page.goto(again["open"])
        page.wait_for_url(server.url + "/demo/callback?*")  # still signed in
        assert json.loads(page.inner_text("#id-token-claims"))["sub"] == claims["sub"]

        # A forgotten demo password can be replaced.
        renewed = _dev_setup(env, "--new-password")["password"].split()[0]
        assert renewed != password


def test_demo_callback_refuses_what_it_did_not_start(demo_server, live_server):
    server, _ = demo_server
    for query in ("", "?code=abc&state=forged", "?error=access_denied&state=x"):
        answer = requests.get(server.url + "/demo/callback" + query, timeout=10)
        assert answer.status_code == 400
        assert "does not belong to a sign-in started here" in answer.text
        assert "Traceback" not in answer.text
    # Without LATCHKEY_DEMO_DATA (as in production) there is no demo at all.
    assert requests.get(live_server.url + "/demo/start", timeout=10).status_code == 404
