"""Device authorization grant (RFC 8628) end to end against a live server:
the TV asks for codes and polls, the person signs in and types the code at
/link, approves or denies; pacing, expiry, single use, foreign clients,
wrong codes and their rate limit."""

import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from app.extensions import db
from app.models import Device, DeviceCode
from app.models.base import utcnow
from app.security.opaque_tokens import hash_token
from tests.flows.device_helpers import (
    DEVICE_GRANT,
    USER_CODE,
    decide,
    device_authorization,
    enter_user_code,
    link_device,
    link_page,
    poll,
    start_device_flow,
    unverified_claims,
)
from tests.flows.helpers import (
    TIMEOUT,
    assert_json_error,
    csrf_token,
    new_browser,
    refresh,
    sign_in,
    userinfo,
)
from tests.support.oauth import verify_id_token, verify_jwt

BAD_CODE = "That code is not valid or has expired."


@pytest.fixture
def signed_in(browser, base_url, person):
    sign_in(browser, base_url, person)
    return browser


def _set_device_code(app, device_code: str, **values) -> None:
    with app.app_context():
        db.session.execute(
            update(DeviceCode)
            .where(DeviceCode.device_code_hash == hash_token(device_code))
            .values(**values)
        )
        db.session.commit()
        db.session.remove()


def _interval(app, device_code: str) -> int:
    with app.app_context():
        row = db.session.get(DeviceCode, hash_token(device_code))
        interval = row.interval
        db.session.remove()
    return interval


def assert_bad_code_page(response) -> None:
    assert "Traceback" not in response.text
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert BAD_CODE in response.text
    assert 'id="approve"' not in response.text


# -- the device authorization response ------------------------------------------------
def test_device_authorization_response(base_url, issuer, tv):
    response = device_authorization(base_url, tv, device_name="Kitchen TV")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    # RFC 8628 §3.2
    assert USER_CODE.match(body["user_code"]), body["user_code"]
    assert body["verification_uri"] == issuer + "/link"
    assert body["verification_uri_complete"] == (
        f"{issuer}/link?user_code={body['user_code']}"
    )
    assert len(body["device_code"]) >= 43  # 256 bits
    assert body["expires_in"] > 0
    assert body["interval"] == 5
    assert "scope" not in body or body["scope"]


def test_each_request_gets_fresh_codes(base_url, tv):
    first = start_device_flow(base_url, tv)
    second = start_device_flow(base_url, tv)
    assert first["device_code"] != second["device_code"]
    assert first["user_code"] != second["user_code"]


def test_client_without_device_grant_is_refused(base_url, factories):
    web_app = factories.client(public=True)  # code + refresh only
    response = device_authorization(base_url, web_app)
    assert_json_error(response, 400, "unauthorized_client")


def test_confidential_device_client_must_authenticate(base_url, factories):
    tv = factories.client(device=True, public=False, grant_types=[DEVICE_GRANT])
    assert start_device_flow(base_url, tv)["device_code"]
    # client_id alone is not enough for a confidential client.
    response = requests.post(
        base_url + "/device_authorization",
        data={"client_id": tv.client_id, "scope": "openid"},
        timeout=TIMEOUT,
    )
    assert_json_error(response, 401, "invalid_client")


# -- the whole flow ------------------------------------------------------------
def test_device_flow_end_to_end(
    app, base_url, issuer, jwks, tv, person, signed_in, browser
):
    started = start_device_flow(
        base_url, tv, scope="openid profile offline_access", device_name="Den TV"
    )
    # Nobody has approved yet (RFC 8628 §3.5).
    assert_json_error(
        poll(base_url, tv, started["device_code"]), 400, "authorization_pending"
    )

    # The person types the code in lower case and without the dash.
    typed = started["user_code"].replace("-", "").lower()
    confirm = enter_user_code(browser, base_url, typed)
    assert confirm.status_code == 200, confirm.text[:500]
    assert "Living Room Player" in confirm.text  # the client's name
    assert '<strong id="device-name">Den TV</strong>' in confirm.text
    done = decide(browser, base_url, confirm, approve=True)
    assert done.status_code == 200
    assert '<h1 id="result">Device linked</h1>' in done.text

    response = poll(base_url, tv, started["device_code"])
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert set(tokens["scope"].split()) == {"openid", "profile", "offline_access"}
    assert tokens["refresh_token"]
    id_token = verify_id_token(tokens["id_token"], jwks, issuer, tv.client_id)
    assert id_token["sub"] == person.id
    assert id_token["name"] == "Ada Lovelace"
    access = verify_jwt(tokens["access_token"], jwks, issuer, tv.client_id)
    assert access["sub"] == person.id
    assert userinfo(base_url, tokens["access_token"]).json()["sub"] == person.id

    # The TV is a device of its own, listed under the name it gave.
    with app.app_context():
        device = db.session.get(Device, access["did"])
        assert device.account_id == person.id
        assert device.name == "Den TV"
        db.session.remove()
    page = browser.get(base_url + "/account/devices", timeout=TIMEOUT)
    assert f'data-device-id="{access["did"]}"' in page.text
    assert '<strong class="device-name">Den TV</strong>' in page.text

    # The device code is single use (RFC 8628 §3.5 / RFC 6749 §5.2).
    assert_json_error(poll(base_url, tv, started["device_code"]), 400, "invalid_grant")
    # A public client refreshes with its client_id alone.
    refreshed = refresh(base_url, tv, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert unverified_claims(refreshed.json()["access_token"])["did"] == access["did"]


def test_verification_uri_complete_fills_in_the_code(base_url, tv, signed_in, browser):
    started = start_device_flow(base_url, tv)
    page = browser.get(started["verification_uri_complete"], timeout=TIMEOUT)
    assert page.status_code == 200
    assert f'value="{started["user_code"]}"' in page.text


def test_link_asks_for_sign_in_first(base_url, tv):
    started = start_device_flow(base_url, tv)
    with new_browser() as anonymous:
        response = anonymous.get(
            started["verification_uri_complete"],
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_device_name_defaults_to_the_client_name(app, base_url, tv, signed_in):
    started = start_device_flow(base_url, tv)
    link_device(signed_in, base_url, started["user_code"])
    tokens = poll(base_url, tv, started["device_code"]).json()
    with app.app_context():
        device = db.session.get(
            Device, unverified_claims(tokens["access_token"])["did"]
        )
        assert device.name == "Living Room Player"
        db.session.remove()


# -- pacing, denial, expiry, foreign clients -------------------------------------
def test_polling_too_fast_slows_the_client_down(app, base_url, tv):
    started = start_device_flow(base_url, tv)
    code = started["device_code"]
    assert_json_error(poll(base_url, tv, code), 400, "authorization_pending")
    # RFC 8628 §3.5: faster than the interval earns slow_down, +5 s each time.
    assert_json_error(poll(base_url, tv, code), 400, "slow_down")
    assert _interval(app, code) == 10
    assert_json_error(poll(base_url, tv, code), 400, "slow_down")
    assert _interval(app, code) == 15
    # Waiting the interval out is pending again, not slow_down.
    _set_device_code(app, code, last_polled_at=utcnow() - timedelta(seconds=16))
    assert_json_error(poll(base_url, tv, code), 400, "authorization_pending")


def test_denied_request_gets_access_denied(base_url, tv, signed_in):
    started = start_device_flow(base_url, tv)
    done = link_device(signed_in, base_url, started["user_code"], approve=False)
    assert '<h1 id="result">Request denied</h1>' in done.text
    assert_json_error(poll(base_url, tv, started["device_code"]), 400, "access_denied")
    assert_json_error(poll(base_url, tv, started["device_code"]), 400, "access_denied")
    # A decided code cannot be decided again.
    assert_bad_code_page(enter_user_code(signed_in, base_url, started["user_code"]))


def test_expired_device_code(app, base_url, tv, signed_in):
    started = start_device_flow(base_url, tv)
    _set_device_code(
        app, started["device_code"], expires_at=utcnow() - timedelta(seconds=1)
    )
    assert_json_error(poll(base_url, tv, started["device_code"]), 400, "expired_token")
    # Nor can the person approve it any more.
    assert_bad_code_page(enter_user_code(signed_in, base_url, started["user_code"]))


def test_approved_then_expired_before_polling(app, base_url, tv, signed_in):
    started = start_device_flow(base_url, tv)
    link_device(signed_in, base_url, started["user_code"])
    _set_device_code(
        app, started["device_code"], expires_at=utcnow() - timedelta(seconds=1)
    )
    assert_json_error(poll(base_url, tv, started["device_code"]), 400, "expired_token")


def test_polling_with_another_clients_id_is_invalid_grant(
    base_url, factories, tv, signed_in
):
    other = factories.client(device=True, name="Other TV app")
    started = start_device_flow(base_url, tv)
    link_device(signed_in, base_url, started["user_code"])
    assert_json_error(
        poll(base_url, other, started["device_code"]), 400, "invalid_grant"
    )
    # The foreign attempt neither used up nor spoiled the code.
    assert poll(base_url, tv, started["device_code"]).status_code == 200


def test_unknown_device_code_is_invalid_grant(base_url, tv):
    assert_json_error(poll(base_url, tv, "no-such-code"), 400, "invalid_grant")
    assert_json_error(poll(base_url, tv, "x" * 500), 400, "invalid_grant")
    missing = poll(base_url, tv, "")
    assert_json_error(missing, 400, "invalid_request")


# -- /link with bad input -----------------------------------------------------
def test_wrong_code_gets_a_clear_message_and_no_hint(app, base_url, tv, signed_in):
    used = start_device_flow(base_url, tv)
    link_device(signed_in, base_url, used["user_code"])
    expired = start_device_flow(base_url, tv)
    _set_device_code(
        app, expired["device_code"], expires_at=utcnow() - timedelta(seconds=1)
    )
    pages = [
        enter_user_code(signed_in, base_url, code)
        for code in ("BCDF-GHJK", "not a code", used["user_code"], expired["user_code"])
    ]
    for page in pages:
        assert_bad_code_page(page)
        assert "Living Room Player" not in page.text
    # Unknown, malformed, used and expired codes look the same: no hint.
    errors = {p.text.split('role="alert">')[1].split("<")[0] for p in pages}
    assert len(errors) == 1


def test_wrong_codes_are_rate_limited_per_account_and_address(
    base_url, factories, tv, signed_in
):
    started = start_device_flow(base_url, tv)
    page = link_page(signed_in, base_url)
    token = csrf_token(page.text)
    for _ in range(10):
        response = signed_in.post(
            base_url + "/link",
            data={"csrf_token": token, "user_code": "BCDF-GHJK"},
            timeout=TIMEOUT,
        )
        assert response.status_code == 400
    blocked = signed_in.post(
        base_url + "/link",
        data={"csrf_token": token, "user_code": started["user_code"]},
        timeout=TIMEOUT,
    )
    assert blocked.status_code == 429
    assert started["user_code"] not in blocked.text
    # Another person on the same address is not locked out by these guesses.
    with new_browser() as other:
        sign_in(other, base_url, factories.account())
        confirm = enter_user_code(other, base_url, started["user_code"])
        assert confirm.status_code == 200
        assert 'id="approve"' in confirm.text


def test_link_post_without_csrf_token_is_refused(base_url, tv, signed_in):
    started = start_device_flow(base_url, tv)
    response = signed_in.post(
        base_url + "/link", data={"user_code": started["user_code"]}, timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert 'id="approve"' not in response.text
    decided = signed_in.post(
        base_url + "/link/decide",
        data={"user_code": started["user_code"], "decision": "approve"},
        timeout=TIMEOUT,
    )
    assert decided.status_code == 400
    assert "Device linked" not in decided.text
    assert_json_error(
        poll(base_url, tv, started["device_code"]), 400, "authorization_pending"
    )


def test_decision_must_be_approve_or_deny(base_url, tv, signed_in):
    started = start_device_flow(base_url, tv)
    confirm = enter_user_code(signed_in, base_url, started["user_code"])
    fields = {
        "csrf_token": csrf_token(confirm.text),
        "user_code": started["user_code"],
        "decision": "maybe",
    }
    response = signed_in.post(base_url + "/link/decide", data=fields, timeout=TIMEOUT)
    assert response.status_code == 400
    assert_json_error(
        poll(base_url, tv, started["device_code"]), 400, "authorization_pending"
    )


def test_devices_table_has_only_the_approved_device(
    app, base_url, tv, signed_in, person
):
    denied = start_device_flow(base_url, tv, device_name="Denied TV")
    link_device(signed_in, base_url, denied["user_code"], approve=False)
    approved = start_device_flow(base_url, tv, device_name="Approved TV")
    link_device(signed_in, base_url, approved["user_code"])
    with app.app_context():
        names = set(
            db.session.execute(
                select(Device.name).where(
                    Device.account_id == person.id, Device.kind != "browser"
                )
            ).scalars()
        )
        db.session.remove()
    assert names == {"Approved TV"}


def test_parallel_polls_of_an_approved_code_issue_tokens_once(base_url, tv, signed_in):
    started = start_device_flow(base_url, tv)
    link_device(signed_in, base_url, started["user_code"])
    barrier = threading.Barrier(10)
    responses: list = []

    def worker():
        barrier.wait()
        responses.append(poll(base_url, tv, started["device_code"]))

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(responses) == 10
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 9, [r.text for r in responses]
    for r in responses:
        if r.status_code == 400:
            assert r.json()["error"] == "invalid_grant"


def test_unknown_scope_in_device_authorization(base_url, tv):
    response = device_authorization(base_url, tv, scope="openid admin")
    assert_json_error(response, 400, "invalid_scope")


def test_device_signed_out_before_its_first_poll(base_url, tv, signed_in):
    started = start_device_flow(base_url, tv, device_name="Borrowed TV")
    link_device(signed_in, base_url, started["user_code"])
    # The person has second thoughts and signs the new device out at once.
    page = signed_in.get(base_url + "/account/devices", timeout=TIMEOUT).text
    marker = '<strong class="device-name">Borrowed TV</strong>'
    device_id = page.split(marker)[0].rsplit('data-device-id="', 1)[1].split('"')[0]
    response = signed_in.post(
        f"{base_url}/account/devices/{device_id}/sign-out",
        data={"csrf_token": csrf_token(page)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 302
    assert_json_error(poll(base_url, tv, started["device_code"]), 400, "access_denied")
