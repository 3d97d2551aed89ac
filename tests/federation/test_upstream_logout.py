"""The upstream provider ends a session and tells Latchkey by back-channel
logout (OIDC Back-Channel Logout 1.0): the upstream here is the second,
real Latchkey process, whose own outbox worker posts the logout token."""

import time

import requests
from sqlalchemy import select

from app.cutoff.services import cut_off_account
from app.events.history import label_for
from app.extensions import db
from app.models import BrowserSession, SecurityEvent
from app.models.base import new_id
from app.outbox.services import run_once
from tests.federation.helpers import SLUG, account_by_email, events, federate
from tests.flows.backchannel_rp import RecordingRP
from tests.flows.helpers import TIMEOUT, new_browser
from tests.flows.session_helpers import (
    assert_alive,
    assert_dead,
    assert_outlives_session,
    deliver_logouts,
    logout_claims,
    sign_in_twice,
)

EVENT = "http://schemas.openid.net/event/backchannel-logout"
UPSTREAM_LOGOUT = "account:provider:logout"


def _signed_in(browser, base_url) -> bool:
    page = browser.get(base_url + "/account", allow_redirects=False, timeout=TIMEOUT)
    return page.status_code == 200


def _upstream_sign_out(upstream, account_id):
    """The person signs out everywhere at the upstream, whose worker then
    delivers the logout tokens."""
    with upstream.app.app_context():
        cut_off_account(account_id)
        db.session.commit()
        run_once()
        db.session.remove()


def _post(base_url, token, slug=SLUG):
    return requests.post(
        f"{base_url}/federation/{slug}/backchannel-logout",
        data={"logout_token": token},
        timeout=TIMEOUT,
    )


def _upstream_signed(upstream, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": upstream.url,
        "aud": upstream.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": new_id(),
        "events": {EVENT: {}},
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    with upstream.app.app_context():
        return upstream.app.extensions["latchkey"].keys.sign(
            body, "ES256", typ="logout+jwt"
        )


def test_upstream_logout_ends_the_sessions_it_started(
    app, base_url, upstream, up_person
):
    bystander = upstream.factories.account()
    with new_browser() as mine, new_browser() as theirs:
        federate(mine, base_url, upstream, up_person)
        federate(theirs, base_url, upstream, bystander)
        assert _signed_in(mine, base_url)

        _upstream_sign_out(upstream, up_person.id)

        assert not _signed_in(mine, base_url)
        assert _signed_in(theirs, base_url)  # another person's session lives
    account = account_by_email(app, up_person.email)
    (logged_out,) = events(app, UPSTREAM_LOGOUT)
    assert logged_out["account_id"] == account.id
    with app.app_context():
        session = db.session.execute(
            select(BrowserSession).where(BrowserSession.account_id == account.id)
        ).scalar_one()
        assert session.ended_at is not None
        assert session.upstream_provider == SLUG
        assert session.upstream_subject == up_person.id
        db.session.remove()


def test_a_logout_for_another_upstream_session_ends_nothing(
    app, base_url, upstream, up_person
):
    with new_browser() as browser:
        federate(browser, base_url, upstream, up_person)
        token = _upstream_signed(upstream, sub="someone-else", sid="no-such-session")
        response = _post(base_url, token)
        assert response.status_code == 200
        assert _signed_in(browser, base_url)


def test_bad_logout_tokens_are_refused_and_end_nothing(
    app, base_url, upstream, up_person
):
    with new_browser() as browser:
        federate(browser, base_url, upstream, up_person)
        with app.app_context():
            session = db.session.execute(select(BrowserSession)).scalar_one()
            sub, sid = session.upstream_subject, session.upstream_sid
            ours = app.extensions["latchkey"].keys.sign(
                {
                    "iss": upstream.url,
                    "aud": upstream.client_id,
                    "sub": sub,
                    "iat": int(time.time()),
                    "events": {EVENT: {}},
                },
                "ES256",
                typ="logout+jwt",
            )
            db.session.remove()
        bad = {
            "garbage": "not-a-jwt",
            "empty": "",
            "signed by another key": ours,
            "other issuer": _upstream_signed(upstream, iss=base_url, sub=sub),
            "other audience": _upstream_signed(upstream, aud="someone", sub=sub),
            "no event": _upstream_signed(upstream, events={}, sub=sub),
            "nonce (an ID token)": _upstream_signed(upstream, nonce="n", sub=sub),
            "neither sub nor sid": _upstream_signed(upstream),
            "expired": _upstream_signed(upstream, sub=sub, exp=int(time.time()) - 600),
        }
        for name, token in bad.items():
            response = _post(base_url, token)
            assert response.status_code == 400, name
            assert response.json()["error"] == "invalid_request", name
        assert _signed_in(browser, base_url)
        assert (
            _post(
                base_url, _upstream_signed(upstream, sid=sid), slug="nobody"
            ).status_code
            == 404
        )
        # The real thing still works.
        assert _post(base_url, _upstream_signed(upstream, sid=sid)).status_code == 200
        assert not _signed_in(browser, base_url)


def test_upstream_logout_ends_the_session_bound_grants_it_carried(
    app, base_url, upstream, up_person, factories, jwks, rs
):
    """Back-Channel Logout §2.7: the upstream's logout ends our session, so
    an app's grant made in it without offline_access dies, the one with
    offline_access lives on, and the app is told by its own logout token."""
    recording = RecordingRP()
    try:
        client = factories.client(
            name="Photo App", backchannel_logout_uri=recording.url
        )
        with new_browser() as browser:
            federate(browser, base_url, upstream, up_person)
            account = account_by_email(app, up_person.email)
            grants = sign_in_twice(browser, base_url, account, client, jwks, base_url)
            assert_alive(base_url, rs, client, grants.bound)

            _upstream_sign_out(upstream, up_person.id)

            assert not _signed_in(browser, base_url)
        assert_dead(base_url, rs, client, grants.bound)
        assert_outlives_session(base_url, rs, client, grants.offline, grants.sid)
        deliver_logouts(app)
        (claims,) = logout_claims(recording, jwks, base_url, client)
        assert claims["sid"] == grants.sid
        assert claims["sub"] == account.id
        with app.app_context():
            cause = db.session.execute(
                select(BrowserSession.end_cause).where(BrowserSession.sid == grants.sid)
            ).scalar_one()
            (event,) = db.session.execute(
                select(SecurityEvent).where(SecurityEvent.tag == UPSTREAM_LOGOUT)
            ).scalars()
            label = label_for(event)
            db.session.remove()
        assert cause == "upstream_logout"
        # The person's security history says who signed them out.
        assert label == "Signed out by Upstream SSO"
    finally:
        recording.stop()
