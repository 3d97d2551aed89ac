"""Helpers for the account-security tests, which drive the in-process app
with Flask's test client (no live server: fast, and the test controls the
client's address).

Each ``Web`` is one person's browser: it keeps cookies and has its own
REMOTE_ADDR, so the per-address rate limits one test spends never reach the
next (the limiter's Redis is shared by the whole run).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from datetime import timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
from sqlalchemy import select, update

from app.accounts.totp import new_recovery_codes
from app.extensions import db
from app.models import Account, BrowserSession, OutboxMessage, SecurityEvent
from app.models.base import utcnow
from tests.flows.helpers import BROWSER_UA, csrf_token, form_inputs
from tests.support.mail import deliver_mail, mailed
from tests.support.oauth import pkce_pair

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOTP_PERIOD = 30  # RFC 6238 §4.1: X, the time step, 30 s by default
_SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7 ]+)</code>')
_CODES = re.compile(r'<ol id="recovery-codes">(.*?)</ol>', re.S)


class Web:
    """A browser against the in-process app (cookies, own IP address)."""

    def __init__(self, app, ip: str | None = None):
        self.app = app
        self.client = app.test_client()
        self.ip = ip or "10.{}.{}.{}".format(*secrets.token_bytes(3))
        self.client.environ_base.update(REMOTE_ADDR=self.ip, HTTP_USER_AGENT=BROWSER_UA)

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, **kwargs):
        return self.client.post(path, data=data or {}, **kwargs)

    def submit(self, page_path: str, action: str | None = None, **fields):
        """GET ``page_path`` and POST its CSRF token plus ``fields`` to
        ``action`` (default: the same path)."""
        page = self.get(page_path)
        assert page.status_code == 200, (page.status_code, page.text[:300])
        return self.post(
            action or page_path, {"csrf_token": csrf_token(page.text), **fields}
        )


# -- signing in ---------------------------------------------------------------
def submit_password(web: Web, account, login_path: str = "/login", password=None):
    """POST the login form shown at ``login_path`` (keeping its hidden
    ``next``); returns the response, not followed."""
    page = web.get(login_path)
    fields = form_inputs(page.text)
    return web.post(
        "/login",
        {
            "csrf_token": fields["csrf_token"],
            "next": fields.get("next", ""),
            "email": account.email,
            "password": account.password if password is None else password,
        },
    )


def submit_second_factor(web: Web, code: str = "", recovery_code: str = ""):
    page = web.get("/login/2fa")
    assert page.status_code == 200, (page.status_code, page.location)
    data = {"csrf_token": csrf_token(page.text)}
    if recovery_code:
        data["recovery_code"] = recovery_code
    else:
        data["code"] = code
    return web.post("/login/2fa", data)


def sign_in(web: Web, account):
    """Password sign-in of an account without 2FA; asserts it worked."""
    response = submit_password(web, account)
    assert response.status_code == 302, response.text[:300]
    assert urlsplit(response.location).path == "/account"
    return response


def is_signed_in(web: Web) -> bool:
    return web.get("/account").status_code == 200


def make_stale(app, account_id: str, seconds: int = 3600) -> None:
    """Move the account's sign-ins into the past, beyond the re-auth age."""
    with app.app_context():
        db.session.execute(
            update(BrowserSession)
            .where(BrowserSession.account_id == account_id)
            .values(auth_time=utcnow() - timedelta(seconds=seconds))
        )
        db.session.commit()
        db.session.remove()


# -- TOTP (RFC 6238) ----------------------------------------------------------
def steady_step(min_left: float = 4.0) -> int:
    """The current time step T = floor(unix time / X) (RFC 6238 §4.2), once
    at least ``min_left`` seconds of it remain.

    The server accepts codes of steps T-1..T+1; waiting out the end of a step
    keeps all three acceptable for the rest of a short test.
    """
    left = TOTP_PERIOD - time.time() % TOTP_PERIOD
    if left < min_left:
        time.sleep(left + 0.05)
    return int(time.time() // TOTP_PERIOD)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def wrong_code(secret: str, step: int) -> str:
    """A 6-digit code valid for no step near ``step``."""
    near = {code_at(secret, s) for s in range(step - 3, step + 4)}
    return next(c for c in (f"{n:06d}" for n in range(0, 10**6, 7919)) if c not in near)


def secret_on(page_html: str) -> str:
    match = _SECRET.search(page_html)
    assert match, "no totp-secret on the page"
    return match.group(1).replace(" ", "")


def recovery_codes_on(page_html: str) -> list[str]:
    match = _CODES.search(page_html)
    assert match, "no recovery-codes list on the page"
    return [unescape(c) for c in re.findall(r"<code>([^<]+)</code>", match.group(1))]


def enrol(web: Web, step: int, password: str | None = None):
    """Set up TOTP through the pages with the code of ``step``; returns
    (secret, recovery codes)."""
    page = web.get("/account/2fa/setup")
    assert page.status_code == 200, page.text[:300]
    secret = secret_on(page.text)
    data = {"csrf_token": csrf_token(page.text), "code": code_at(secret, step)}
    if password:
        data["password"] = password
    done = web.post("/account/2fa/setup", data)
    assert done.status_code == 200, done.text[:500]
    return secret, recovery_codes_on(done.text)


def enable_totp_directly(app, account_id: str) -> tuple[str, list[str]]:
    """The ``with_totp`` trait: 2FA on, as if enrolled long ago."""
    with app.app_context():
        totp = app.extensions["latchkey"].totp
        account = db.session.get(Account, account_id)
        secret = totp.new_secret()
        account.totp_secret_encrypted = totp.encrypt(secret)
        account.totp_enabled_at = utcnow() - timedelta(days=30)
        account.totp_last_step = None
        codes = new_recovery_codes(account)
        db.session.commit()
        db.session.remove()
    return secret, codes


def account_row(app, account_id: str) -> Account:
    with app.app_context():
        account = db.session.get(Account, account_id)
        db.session.expunge(account)
        db.session.remove()
    return account


def event_tags(app, account_id: str) -> list[str]:
    with app.app_context():
        tags = list(
            db.session.execute(
                select(SecurityEvent.tag)
                .where(SecurityEvent.account_id == account_id)
                .order_by(SecurityEvent.id)
            ).scalars()
        )
        db.session.remove()
    return tags


def events_of(app, account_id: str, tag: str) -> list[SecurityEvent]:
    with app.app_context():
        rows = list(
            db.session.execute(
                select(SecurityEvent)
                .where(SecurityEvent.account_id == account_id, SecurityEvent.tag == tag)
                .order_by(SecurityEvent.id)
            ).scalars()
        )
        db.session.expunge_all()
        db.session.remove()
    return rows


# -- mail -------------------------------------------------------------------------
def queued_subjects(app, to: str) -> list[str]:
    """Subjects of the emails waiting in the outbox for ``to``."""
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.payload).where(OutboxMessage.kind == "email")
        ).scalars()
        subjects = [p["subject"] for p in rows if p["to"] == to]
        db.session.remove()
    return subjects


def delivered_mail(app, mail_dir: Path, to: str) -> list[EmailMessage]:
    """Run the outbox worker once, then read the .eml files written for ``to``."""
    deliver_mail(app)
    return mailed(mail_dir, to)


# -- OAuth against the in-process app ---------------------------------------
def basic_auth(client) -> dict:
    raw = f"{client.client_id}:{client.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def token_post(web: Web, data: dict, client):
    if client.secret:
        return web.post("/token", data, headers=basic_auth(client))
    return web.post("/token", {**data, "client_id": client.client_id})


def authorize(web: Web, client, account, code: str | None = None, **extra):
    """Walk /authorize for a first-party client; returns the token JSON.

    The person signs in on the way (with ``code`` as the second factor when
    given). The redirect back carries the code, state and RFC 9207 iss.
    """
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid email profile offline_access",
        "state": state,
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    response = web.get("/authorize?" + urlencode(params))
    if urlsplit(response.location).path == "/login":
        response = submit_password(web, account, login_path=response.location)
        assert response.status_code == 302, response.text[:300]
        if urlsplit(response.location).path == "/login/2fa":
            response = submit_second_factor(web, code=code)
            assert response.status_code == 302, response.text[:300]
        response = web.get(response.location)
    assert response.status_code == 302, response.text[:500]
    query = parse_qs(urlsplit(response.location).query)
    assert query["state"] == [state], response.location
    tokens = token_post(
        web,
        {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        },
        client,
    )
    assert tokens.status_code == 200, tokens.text
    return tokens.json | {"nonce": params["nonce"]}


def refresh(web: Web, client, refresh_token: str):
    return token_post(
        web, {"grant_type": "refresh_token", "refresh_token": refresh_token}, client
    )


def introspect(web: Web, rs, token: str) -> dict:
    response = web.post("/introspect", {"token": token}, headers=basic_auth(rs))
    assert response.status_code == 200, response.text
    return response.get_json()


def device_flow_approved(web: Web, tv) -> str:
    """Start a device authorization and approve it at /link as the signed-in
    ``web``; returns the device_code, not yet polled."""
    started = web.post(
        "/device_authorization",
        {"client_id": tv.client_id, "scope": "openid offline_access"},
    )
    assert started.status_code == 200, started.text
    body = started.get_json()
    confirm = web.submit("/link", user_code=body["user_code"])
    assert confirm.status_code == 200, confirm.text[:300]
    fields = form_inputs(confirm.text)
    done = web.post(
        "/link/decide",
        {
            "csrf_token": fields["csrf_token"],
            "user_code": fields["user_code"],
            "decision": "approve",
        },
    )
    assert done.status_code == 200, done.text[:300]
    return body["device_code"]


def poll(web: Web, tv, device_code: str):
    return token_post(web, {"grant_type": DEVICE_GRANT, "device_code": device_code}, tv)
