"""The device flow (RFC 8628) with a real browser: the TV (this test thread)
asks for a code and polls; the person, in Chromium, signs in, types the code
at /link and approves; the TV gets its tokens and is listed as a device."""

from urllib.parse import urlsplit

import jwt
import requests

from tests.support.chromium import answer_consent, submit_sign_in
from tests.support.oauth import jwks_client, verify_id_token

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _poll(issuer: str, client_id: str, device_code: str) -> requests.Response:
    return requests.post(
        issuer + "/token",
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": device_code,
            "client_id": client_id,
        },
        timeout=5,
    )


def test_link_a_tv_in_the_browser(live_server, factories, page):
    issuer = live_server.url
    tv = factories.client(device=True, name="Cinema app")
    account = factories.account()

    # The TV asks for codes and shows the person where to go.
    response = requests.post(
        issuer + "/device_authorization",
        data={
            "client_id": tv.client_id,
            "scope": "openid profile offline_access",
            "device_name": "Lounge TV",
        },
        timeout=5,
    )
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["verification_uri"] == issuer + "/link"
    pending = _poll(issuer, tv.client_id, started["device_code"])
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"

    # The person goes to /link on a phone or laptop and is asked to sign in.
    page.goto(started["verification_uri"])
    assert urlsplit(page.url).path == "/login"
    submit_sign_in(page, account)
    page.wait_for_selector("#user_code")
    assert urlsplit(page.url).path == "/link"

    # They type the code as people do: lower case, with a space for the dash.
    page.fill("#user_code", started["user_code"].lower().replace("-", " "))
    page.click("#continue")
    page.wait_for_selector("#approve")
    assert page.inner_text("#device-name") == "Lounge TV"
    assert "Cinema app" in page.inner_text("body")
    answer_consent(page)
    page.wait_for_selector("#result")
    assert page.inner_text("#result") == "Device linked"

    # The TV's next poll gets its tokens.
    response = _poll(issuer, tv.client_id, started["device_code"])
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    id_token = verify_id_token(
        tokens["id_token"],
        jwks_client(issuer),
        issuer,
        tv.client_id,
        access_token=tokens["access_token"],
    )
    assert id_token["sub"] == account.id
    access = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert access["sub"] == account.id

    # The TV is now one of the person's connected devices, under its own name.
    page.goto(issuer + "/account/devices")
    device = page.locator(f'li.device[data-device-id="{access["did"]}"]')
    assert device.locator(".device-name").inner_text() == "Lounge TV"
    assert "Cinema app" in device.inner_text()
