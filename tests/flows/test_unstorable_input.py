"""A value the database cannot store is bad input, wherever it arrives.

PostgreSQL refuses NUL bytes in text; fields with their own protocol check
(client_id, nonce, email) answer with their own errors, and every other
field falls to one handler that answers 400 instead of a 500. SQLite stores
the byte, so there the request simply succeeds.
"""

import pytest
import requests

from app.extensions import db
from tests.flows.helpers import TIMEOUT, csrf_token, new_browser, sign_in

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def refuses_nul(app) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


def test_device_name_with_a_nul_byte(live_server, factories, refuses_nul):
    tv = factories.client(device=True, grant_types=[DEVICE_GRANT])
    response = requests.post(
        live_server.url + "/device_authorization",
        data={"client_id": tv.client_id, "device_name": "TV\x00"},
        timeout=TIMEOUT,
    )
    if refuses_nul:
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
    else:
        assert response.status_code == 200


def test_signup_name_with_a_nul_byte(live_server, refuses_nul):
    browser = new_browser()
    page = browser.get(live_server.url + "/signup", timeout=TIMEOUT)
    response = browser.post(
        live_server.url + "/signup",
        data={
            "csrf_token": csrf_token(page.text),
            "email": "nul-name@example.com",
            "name": "Ada\x00",
            "password": "sorrel harbour 93 lamp",
        },
        timeout=TIMEOUT,
    )
    assert "Traceback" not in response.text
    assert response.status_code == (400 if refuses_nul else 200)


def test_device_rename_with_a_nul_byte(live_server, factories, refuses_nul):
    browser = new_browser()
    sign_in(browser, live_server.url, factories.account())
    page = browser.get(live_server.url + "/account/devices", timeout=TIMEOUT)
    device_id = page.text.split('data-device-id="')[1].split('"')[0]
    response = browser.post(
        f"{live_server.url}/account/devices/{device_id}/rename",
        data={"csrf_token": csrf_token(page.text), "name": "Lap\x00top"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert "Traceback" not in response.text
    assert response.status_code == (400 if refuses_nul else 302)
