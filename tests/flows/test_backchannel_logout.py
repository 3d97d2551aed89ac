"""OIDC Back-Channel Logout 1.0: cutting off a grant, a device or an account
sends a logout token to each affected relying party that registered a
backchannel_logout_uri, through the outbox, retried until it is taken."""

from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from app.cutoff.services import (
    cut_off_account,
    cut_off_device,
    end_session,
    revoke_grant,
)
from app.extensions import db
from app.logout.backchannel import FANOUT, HANDLERS, LOGOUT
from app.models import BrowserSession, Grant, OutboxMessage
from app.models.base import utcnow
from app.outbox.services import run_once
from tests.conftest import free_port
from tests.flows.backchannel_rp import RecordingRP, verify_logout_token
from tests.flows.helpers import new_browser, tokens_for
from tests.support.oauth import verify_id_token


@pytest.fixture
def start_rp():
    """Start recording relying parties; all are stopped after the test."""
    started = []

    def start(port=0, status=200):
        rp = RecordingRP(port, status)
        started.append(rp)
        return rp

    yield start
    for rp in started:
        rp.stop()


@pytest.fixture
def sign_in_to(base_url, jwks, issuer):
    """sign_in_to(browser, person, client) -> the verified ID token claims
    (sid names the browser's session) after a whole code flow."""

    def sign_in(browser, person, client):
        tokens = tokens_for(browser, base_url, person, client)
        return verify_id_token(tokens["id_token"], jwks, issuer, client.client_id)

    return sign_in


def _cut_off(app, action, *args):
    """Run a revocation service in its own transaction, as the views do."""
    with app.app_context():
        result = action(*args)
        db.session.commit()
        db.session.remove()
    return result


def _work(app, now=None) -> int:
    """Run the worker for back-channel logout only (not, say, email)."""
    with app.app_context():
        try:
            return run_once(now=now, handlers=HANDLERS)
        finally:
            db.session.remove()


def _grant_id(app, client_id, sid):
    with app.app_context():
        return db.session.execute(
            select(Grant.id).where(
                Grant.client_id == client_id, Grant.session_sid == sid
            )
        ).scalar_one()


def _device_id(app, sid):
    with app.app_context():
        return db.session.execute(
            select(BrowserSession.device_id).where(BrowserSession.sid == sid)
        ).scalar_one()


def _outbox_rows(app, *kinds) -> int:
    """Back-channel logout rows (others, such as email, are not counted)."""
    with app.app_context():
        return db.session.execute(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.kind.in_(kinds or (FANOUT, LOGOUT))
            )
        ).scalar_one()


def _claims(rp, jwks, issuer, client, alg="RS256"):  # the registration default
    return [
        verify_logout_token(t, jwks, issuer, client.client_id, alg) for t in rp.tokens
    ]


def test_discovery_advertises_back_channel_logout(base_url):
    meta = requests.get(base_url + "/.well-known/openid-configuration", timeout=5)
    meta = meta.json()
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert meta["frontchannel_logout_supported"] is False


def test_revoking_a_grant_tells_that_client_only(
    app, factories, person, browser, sign_in_to, start_rp, jwks, issuer
):
    rp_a, rp_b = start_rp(), start_rp()
    a = factories.client(backchannel_logout_uri=rp_a.url)
    b = factories.client(backchannel_logout_uri=rp_b.url, id_token_alg="ES256")
    silent = factories.client()  # registered no back-channel URI
    id_a = sign_in_to(browser, person, a)
    sign_in_to(browser, person, b)
    sign_in_to(browser, person, silent)

    assert _cut_off(app, revoke_grant, _grant_id(app, a.client_id, id_a["sid"]), "t")
    assert _outbox_rows(app) == 1  # one row, whatever the fan-out
    _work(app)

    (claims,) = _claims(rp_a, jwks, issuer, a)
    assert claims["sub"] == person.id
    assert claims["sid"] == id_a["sid"]
    assert rp_b.requests == []
    # §2.5: a form-encoded POST to the registered URI.
    (request,) = rp_a.requests
    assert request["path"] == "/backchannel-logout"
    assert request["content_type"] == "application/x-www-form-urlencoded"

    # Now B's grant: its token is signed with B's algorithm.
    grant_b = _grant_id(app, b.client_id, id_a["sid"])
    assert _cut_off(app, revoke_grant, grant_b, "t")
    _work(app)
    (claims_b,) = _claims(rp_b, jwks, issuer, b, alg="ES256")
    assert claims_b["sid"] == id_a["sid"]
    assert len(rp_a.tokens) == 1


def test_signing_out_a_device_tells_its_clients_about_its_session(
    app, factories, person, browser, second_browser, sign_in_to, start_rp, jwks, issuer
):
    rp_a, rp_b = start_rp(), start_rp()
    a = factories.client(backchannel_logout_uri=rp_a.url)
    b = factories.client(backchannel_logout_uri=rp_b.url)
    on_laptop = sign_in_to(browser, person, a)
    sign_in_to(browser, person, b)
    on_phone = sign_in_to(second_browser, person, a)
    laptop = _device_id(app, on_laptop["sid"])

    assert _cut_off(app, cut_off_device, person.id, laptop)
    _work(app)

    (claims_a,) = _claims(rp_a, jwks, issuer, a)
    (claims_b,) = _claims(rp_b, jwks, issuer, b)
    assert claims_a["sid"] == claims_b["sid"] == on_laptop["sid"]
    assert claims_a["sub"] == person.id
    assert on_phone["sid"] not in {c["sid"] for c in (claims_a, claims_b)}
    assert claims_a["jti"] != claims_b["jti"]


def test_signing_out_an_account_tells_every_client_about_every_session(
    app, factories, person, browser, second_browser, sign_in_to, start_rp, jwks, issuer
):
    rp_a, rp_b = start_rp(), start_rp()
    a = factories.client(backchannel_logout_uri=rp_a.url)
    b = factories.client(backchannel_logout_uri=rp_b.url)
    silent = factories.client()
    laptop = sign_in_to(browser, person, a)
    sign_in_to(browser, person, b)
    sign_in_to(browser, person, silent)
    phone = sign_in_to(second_browser, person, a)
    someone_else = factories.account()
    with new_browser() as theirs:
        sign_in_to(theirs, someone_else, a)

    assert _cut_off(app, cut_off_account, person.id) == 0
    assert _outbox_rows(app) == 1  # constant cost, however many grants
    _work(app)

    claims_a = _claims(rp_a, jwks, issuer, a)
    assert {c["sid"] for c in claims_a} == {laptop["sid"], phone["sid"]}
    assert {c["sub"] for c in claims_a} == {person.id}
    (claims_b,) = _claims(rp_b, jwks, issuer, b)
    assert claims_b["sid"] == laptop["sid"]
    assert len({c["jti"] for c in [*claims_a, claims_b]}) == 3


def test_a_relying_party_that_is_down_gets_the_token_when_it_is_back(
    app, factories, person, browser, sign_in_to, start_rp, jwks, issuer
):
    port = free_port()  # nothing listens here yet
    rp_url = f"http://127.0.0.1:{port}/backchannel-logout"
    a = factories.client(backchannel_logout_uri=rp_url)
    signed_in = sign_in_to(browser, person, a)

    assert _cut_off(
        app, revoke_grant, _grant_id(app, a.client_id, signed_in["sid"]), "t"
    )
    _work(app)
    with app.app_context():
        (row,) = db.session.execute(
            select(OutboxMessage).where(OutboxMessage.kind == LOGOUT)
        ).scalars()
        assert row.sent_at is None
        assert row.attempts == 1
        assert "ConnectionError" in row.last_error
        db.session.remove()

    rp = start_rp(port=port)
    assert _work(app) == 0  # backing off: not due yet
    assert _work(app, now=utcnow() + timedelta(hours=2)) == 1
    (claims,) = _claims(rp, jwks, issuer, a)
    assert claims["sid"] == signed_in["sid"]
    assert _work(app, now=utcnow() + timedelta(hours=4)) == 0  # sent once


def test_an_error_answer_is_retried(
    app, factories, person, browser, sign_in_to, start_rp, jwks, issuer
):
    rp = start_rp(status=503)
    a = factories.client(backchannel_logout_uri=rp.url)
    signed_in = sign_in_to(browser, person, a)
    assert _cut_off(
        app, revoke_grant, _grant_id(app, a.client_id, signed_in["sid"]), "t"
    )

    _work(app)
    assert len(rp.tokens) == 1
    rp.status = 200
    _work(app, now=utcnow() + timedelta(hours=2))
    first, second = _claims(rp, jwks, issuer, a)
    # Each attempt is a fresh token: the first one may have expired.
    assert first["jti"] != second["jti"]
    assert first["sid"] == second["sid"] == signed_in["sid"]


def test_cutting_off_twice_queues_nothing_more(
    app, factories, person, browser, sign_in_to, start_rp, jwks, issuer
):
    rp = start_rp()
    a = factories.client(backchannel_logout_uri=rp.url)
    signed_in = sign_in_to(browser, person, a)
    grant = _grant_id(app, a.client_id, signed_in["sid"])
    device = _device_id(app, signed_in["sid"])

    assert _cut_off(app, revoke_grant, grant, "t")
    assert _cut_off(app, end_session, signed_in["sid"], "logout")
    assert _cut_off(app, cut_off_device, person.id, device)
    _work(app)
    # The grant, session and device all name one session: told once.
    assert len(rp.tokens) == 1
    rows = _outbox_rows(app)

    assert not _cut_off(app, revoke_grant, grant, "t")
    assert not _cut_off(app, end_session, signed_in["sid"], "logout")
    assert not _cut_off(app, cut_off_device, person.id, device)
    assert _outbox_rows(app) == rows

    # Signing out everywhere afterwards: the cut-off session was told already.
    _cut_off(app, cut_off_account, person.id)
    _work(app)
    assert len(rp.tokens) == 1
    assert _outbox_rows(app, FANOUT) == 4


def test_a_cut_off_that_is_rolled_back_tells_nobody(
    app, factories, person, browser, sign_in_to, start_rp
):
    rp = start_rp()
    a = factories.client(backchannel_logout_uri=rp.url)
    signed_in = sign_in_to(browser, person, a)
    with app.app_context():
        assert cut_off_account(person.id) == 0
        db.session.rollback()
        db.session.remove()
    assert _outbox_rows(app) == 0
    _work(app)
    assert rp.tokens == []
    assert signed_in["sid"]
