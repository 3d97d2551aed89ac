"""Helpers for the tests of session-bound grants: one sign-in that gives a
client two grants (one bound to the browser session, one with
offline_access), the checks that each is dead or alive at /token,
/introspect and /userinfo, and the logout tokens a recording relying party
received once the outbox worker ran."""

from __future__ import annotations

from dataclasses import dataclass

from app.extensions import db
from app.logout.backchannel import HANDLERS
from app.outbox.services import run_once
from tests.flows.backchannel_rp import verify_logout_token
from tests.flows.device_helpers import (
    assert_inactive,
    assert_refresh_rejected,
    introspection,
    unverified_claims,
)
from tests.flows.helpers import refresh, tokens_for, userinfo
from tests.support.oauth import verify_id_token

BOUND_SCOPE = "openid email"
OFFLINE_SCOPE = "openid email offline_access"
# RFC 6749 §5.2: invalid_grant, and nothing about why (an ended session, a
# revoked grant and a made-up token read the same).
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "The refresh token is invalid.",
}


@dataclass
class SignIn:
    """A browser's sign-in and the two grants a client got in it."""

    sid: str
    bound: dict  # token response, scope without offline_access
    offline: dict  # token response, with offline_access


def sign_in_twice(browser, base_url, person, client, jwks, issuer) -> SignIn:
    """Two code flows of ``client`` in ``browser``'s one session."""
    bound = tokens_for(browser, base_url, person, client, scope=BOUND_SCOPE)
    offline = tokens_for(browser, base_url, person, client, scope=OFFLINE_SCOPE)
    claims = verify_id_token(bound["id_token"], jwks, issuer, client.client_id)
    offline_claims = verify_id_token(
        offline["id_token"], jwks, issuer, client.client_id
    )
    assert claims["sid"] == offline_claims["sid"]
    return SignIn(claims["sid"], bound, offline)


def assert_alive(base_url, rs, client, tokens: dict) -> None:
    """The access token is live everywhere (the refresh token is not used)."""
    assert introspection(base_url, rs, tokens["access_token"])["active"] is True
    assert introspection(base_url, rs, tokens["refresh_token"])["active"] is True
    assert userinfo(base_url, tokens["access_token"]).status_code == 200


def assert_dead(base_url, rs, client, tokens: dict) -> None:
    """Refresh is invalid_grant with no reason given; both tokens introspect
    inactive; /userinfo answers 401 invalid_token."""
    response = refresh(base_url, client, tokens["refresh_token"])
    assert response.status_code == 400, response.text
    assert response.json() == INVALID_GRANT
    assert_refresh_rejected(base_url, client, tokens["refresh_token"])
    assert_inactive(base_url, rs, tokens["access_token"])
    assert_inactive(base_url, rs, tokens["refresh_token"])
    answer = userinfo(base_url, tokens["access_token"])
    assert answer.status_code == 401, answer.text
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def assert_outlives_session(base_url, rs, client, tokens: dict, sid: str) -> dict:
    """The offline_access grant still refreshes after its session ended, and
    what it hands out no longer names that session (no ended ``sid``)."""
    response = refresh(base_url, client, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    renewed = response.json()
    claims = unverified_claims(renewed["access_token"])
    assert "sid" not in claims, claims
    assert introspection(base_url, rs, renewed["access_token"])["active"] is True
    assert "sid" not in introspection(base_url, rs, renewed["access_token"])
    assert userinfo(base_url, renewed["access_token"]).status_code == 200
    assert sid not in str(renewed)
    return renewed


def deliver_logouts(app) -> int:
    """Run the outbox worker for back-channel logout only."""
    with app.app_context():
        try:
            return run_once(handlers=HANDLERS)
        finally:
            db.session.remove()


def logout_claims(rp, jwks, issuer, client) -> list[dict]:
    """Every logout token ``rp`` received, verified as a relying party must."""
    return [verify_logout_token(t, jwks, issuer, client.client_id) for t in rp.tokens]
