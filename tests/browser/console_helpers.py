"""Helpers for the account-console browser tests: authorize an app through
its consent page and exchange the code, as a person and a relying party
would, and axe-core's check of a page. Signing in is the shared step of
tests/support/chromium.py."""

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.support.chromium import answer_consent
from tests.support.oauth import pkce_pair

TIMEOUT = 10
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


def axe_script() -> str:
    """axe-core's source, installed by `make test` (npm ci, pinned by
    tests/browser/package-lock.json)."""
    if not AXE.exists():
        # Never a skip: a missing checker must not pass as "no violations".
        pytest.fail(f"{AXE} is missing: run npm ci --prefix tests/browser")
    return AXE.read_text()


def assert_accessible(page, axe_source: str, name: str, viewport: str) -> None:
    """Run axe-core on ``page`` (its context needs bypass_csp, since axe is
    an inline script): no serious or critical violation. With
    LATCHKEY_SCREENSHOTS set to a folder, also save a screenshot there."""
    page.add_script_tag(content=axe_source)
    result = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    blocking = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]
    assert blocking == [], f"{name} ({viewport}): {blocking}"
    folder = os.environ.get("LATCHKEY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{folder}/{name}-{viewport}.png", full_page=True)


def authorize(page, base_url: str, client, scope: str) -> dict:
    """Run the code flow for ``client`` in ``page`` (approving the consent
    page if it shows) and exchange the code; returns the token response."""
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": scope,
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    page.goto(f"{base_url}/authorize?{query}")
    if page.locator("#approve").count():
        answer_consent(page)
    page.wait_for_url(client.redirect_uri + "?*")
    (code,) = parse_qs(urlsplit(page.url).query)["code"]
    response = requests.post(
        base_url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


def refresh(base_url: str, client, refresh_token: str) -> requests.Response:
    return requests.post(
        base_url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client.client_id, client.secret),
        timeout=TIMEOUT,
    )


def flash_text(page) -> str:
    """The text of the messages the last action left, e.g. "✓" success."""
    return page.inner_text("#messages")
