"""Helpers for the device, revocation, introspection and sign-out flow tests:
the device authorization grant driven as a TV and as the person at /link,
the RFC 7009 / 7662 endpoints, extra live servers kept for a whole module,
and reads of the database the live servers share."""

from __future__ import annotations

import re
import signal
import subprocess
from dataclasses import dataclass

import jwt
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Grant, RefreshToken, SecurityEvent
from app.security.opaque_tokens import hash_token
from tests.conftest import LiveServer, free_port
from tests.flows.helpers import (
    TIMEOUT,
    client_auth,
    csrf_token,
    form_inputs,
    refresh,
    token_request,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")
INACTIVE = {"active": False}


# -- extra live servers --------------------------------------------------------
# Settings of the extra servers, chosen so that one server serves several test
# modules: each test relies only on the settings it names.
STRICT = {
    "LATCHKEY_REFRESH_GRACE_SECONDS": 0,  # any second use is reuse
    "LATCHKEY_REAUTH_MAX_AGE": 0,  # sign-out-all always asks for the password
}
SHORT_LIVED = {
    "LATCHKEY_ACCESS_TOKEN_LIFETIME": 1,
    "LATCHKEY_REFRESH_IDLE_LIFETIME": 2,
    "LATCHKEY_REFRESH_ABSOLUTE_LIFETIME": 3,
}
_SHARED: dict[tuple, LiveServer] = {}


def shared_server(request, base_env: dict, log_dir, settings: dict) -> LiveServer:
    """A live server on the shared database with ``settings`` changed, started
    once per test run and stopped with the run's session fixtures."""
    key = tuple(sorted((k, str(v)) for k, v in settings.items()))
    server = _SHARED.get(key)
    if server is None:
        env = {**base_env, **dict(key)}
        server = _SHARED[key] = LiveServer(env, free_port(), log_dir)

        def stop():
            _SHARED.pop(key, None)
            _quick_stop(server)

        request.session.addfinalizer(stop)
    return server


def _quick_stop(server: LiveServer) -> None:
    # SIGINT stops the server at once: nothing here needs draining.
    server.proc.send_signal(signal.SIGINT)
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    server.log.close()


# -- the device flow, as the TV -----------------------------------------------
def device_authorization(
    base_url, client, scope="openid profile offline_access", device_name=None, **extra
) -> requests.Response:
    data = {"scope": scope, **extra}
    if device_name is not None:
        data["device_name"] = device_name
    auth, fields = client_auth(client)
    return requests.post(
        base_url + "/device_authorization",
        data={**fields, **data},
        auth=auth,
        timeout=TIMEOUT,
    )


def start_device_flow(base_url, client, **options) -> dict:
    response = device_authorization(base_url, client, **options)
    assert response.status_code == 200, response.text
    return response.json()


def poll(base_url, client, device_code: str) -> requests.Response:
    return token_request(
        base_url, {"grant_type": DEVICE_GRANT, "device_code": device_code}, client
    )


# -- the device flow, as the person at /link -----------------------------------
def link_page(browser, base_url, **params) -> requests.Response:
    return browser.get(base_url + "/link", params=params, timeout=TIMEOUT)


def enter_user_code(browser, base_url, user_code: str) -> requests.Response:
    """Type ``user_code`` on /link; returns the confirmation (or error) page."""
    page = link_page(browser, base_url)
    assert page.status_code == 200, page.text[:300]
    return browser.post(
        base_url + "/link",
        data={"csrf_token": csrf_token(page.text), "user_code": user_code},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def decide(browser, base_url, confirm: requests.Response, approve=True):
    """Press Allow or Deny on the /link confirmation page."""
    fields = form_inputs(confirm.text)
    return browser.post(
        base_url + "/link/decide",
        data={
            "csrf_token": fields["csrf_token"],
            "user_code": fields["user_code"],
            "decision": "approve" if approve else "deny",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def link_device(browser, base_url, user_code: str, approve=True) -> requests.Response:
    confirm = enter_user_code(browser, base_url, user_code)
    assert confirm.status_code == 200, confirm.text[:500]
    done = decide(browser, base_url, confirm, approve)
    assert done.status_code == 200, done.text[:500]
    assert 'id="result"' in done.text
    return done


def device_tokens(base_url, browser, client, **options) -> dict:
    """A whole device flow approved by ``browser`` (already signed in)."""
    started = start_device_flow(base_url, client, **options)
    link_device(browser, base_url, started["user_code"])
    response = poll(base_url, client, started["device_code"])
    assert response.status_code == 200, response.text
    return response.json()


# -- RFC 7009 / RFC 7662 ----------------------------------------------------------
def revoke(base_url, client, token, hint=None, **kwargs) -> requests.Response:
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    auth, fields = client_auth(client)
    kwargs.setdefault("auth", auth)
    return requests.post(
        base_url + "/revoke", data={**fields, **data}, timeout=TIMEOUT, **kwargs
    )


def introspect(base_url, client, token, hint=None, **kwargs) -> requests.Response:
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    kwargs.setdefault("auth", (client.client_id, client.secret))
    return requests.post(base_url + "/introspect", data=data, timeout=TIMEOUT, **kwargs)


def introspection(base_url, rs, token, hint=None) -> dict:
    response = introspect(base_url, rs, token, hint)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json()


def is_active(base_url, rs, token) -> bool:
    return introspection(base_url, rs, token).get("active") is True


def assert_inactive(base_url, rs, token, hint=None) -> None:
    """RFC 7662 §2.2: an inactive token gets ``active: false`` and nothing else."""
    assert introspection(base_url, rs, token, hint) == INACTIVE


def assert_refresh_rejected(base_url, client, refresh_token) -> None:
    response = refresh(base_url, client, refresh_token)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


# -- tokens and the database ---------------------------------------------------
def unverified_claims(token: str) -> dict:
    """Claims of a JWT we only want to read (its signature is checked elsewhere)."""
    return jwt.decode(token, options={"verify_signature": False})


@dataclass
class GrantState:
    revoked: bool
    live_seq: int
    live_hashes: list[str]


def grant_state(app, grant_id: str) -> GrantState:
    """The grant row and the refresh-token rows whose seq is its live_seq."""
    with app.app_context():
        grant = db.session.get(Grant, grant_id)
        live = (
            db.session.execute(
                select(RefreshToken.token_hash).where(
                    RefreshToken.grant_id == grant_id,
                    RefreshToken.seq == grant.live_seq,
                )
            )
            .scalars()
            .all()
        )
        state = GrantState(grant.revoked_at is not None, grant.live_seq, list(live))
        db.session.remove()
    return state


def grant_of_refresh_token(app, refresh_token: str) -> str:
    with app.app_context():
        grant_id = db.session.execute(
            select(RefreshToken.grant_id).where(
                RefreshToken.token_hash == hash_token(refresh_token)
            )
        ).scalar_one()
        db.session.remove()
    return grant_id


def events(app, account_id: str, tag: str) -> list[SecurityEvent]:
    with app.app_context():
        rows = (
            db.session.execute(
                select(SecurityEvent)
                .where(SecurityEvent.account_id == account_id, SecurityEvent.tag == tag)
                .order_by(SecurityEvent.id)
            )
            .scalars()
            .all()
        )
        db.session.expunge_all()
        db.session.remove()
    return list(rows)


# -- the connected-devices page ------------------------------------------------
def devices_page(browser, base_url) -> requests.Response:
    page = browser.get(base_url + "/account/devices", timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:300]
    return page


def sign_out_all_page(browser, base_url) -> requests.Response:
    """The page that asks before signing out of all devices."""
    page = browser.get(base_url + "/account/devices/sign-out-all", timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:300]
    return page


def sign_out_device(browser, base_url, device_id: str) -> requests.Response:
    """Press "Sign out" for ``device_id`` on /account/devices, then confirm."""
    asked = browser.get(
        f"{base_url}/account/devices/{device_id}/sign-out", timeout=TIMEOUT
    )
    token = csrf_token(asked.text)
    return browser.post(
        f"{base_url}/account/devices/{device_id}/sign-out",
        data={"csrf_token": token},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def sign_out_everywhere(browser, base_url, password=None) -> requests.Response:
    """Press "Sign out of all devices", then confirm (with the password if
    given)."""
    page = sign_out_all_page(browser, base_url)
    data = {"csrf_token": csrf_token(page.text)}
    if password is not None:
        data["password"] = password
    return browser.post(
        base_url + "/account/devices/sign-out-all",
        data=data,
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def is_signed_in(browser, base_url) -> bool:
    """True if /account shows the account; False if it sends to /login."""
    response = browser.get(
        base_url + "/account", allow_redirects=False, timeout=TIMEOUT
    )
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/login"), response.headers
        return False
    assert response.status_code == 200, response.text[:300]
    return True
