"""Token introspection (RFC 7662) against live servers: what a resource
server learns about live access and refresh tokens, ``active: false`` and
nothing else for every kind of dead, foreign or made-up token — at once, in
another process too — and who may ask."""

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from app.clients.services import delete_client
from app.extensions import db
from app.models import Grant
from tests.flows.device_helpers import (
    INACTIVE,
    SHORT_LIVED,
    STRICT,
    assert_inactive,
    device_tokens,
    grant_of_refresh_token,
    introspect,
    introspection,
    revoke,
    shared_server,
    sign_out_device,
    sign_out_everywhere,
    unverified_claims,
)
from tests.flows.helpers import (
    TIMEOUT,
    assert_json_error,
    refresh,
    sign_in,
    token_request,
    tokens_for,
)
from tests.support.oauth import b64url

ACCESS_FIELDS = {
    "active",
    "token_type",
    "scope",
    "client_id",
    "sub",
    "exp",
    "iat",
    "iss",
    "aud",
    "jti",
    "device_id",
}
REFRESH_FIELDS = {
    "active",
    "token_type",
    "scope",
    "client_id",
    "sub",
    "exp",
    "iat",
    "iss",
    "device_id",
}


@pytest.fixture(scope="module")
def other_process(request, app, base_env, log_dir):
    """A second server process on the same database."""
    return shared_server(request, base_env, log_dir, STRICT).url


@pytest.fixture(scope="module")
def short_lived(request, app, base_env, log_dir):
    """A server whose access tokens live one second."""
    return shared_server(request, base_env, log_dir, SHORT_LIVED).url


@pytest.fixture
def tokens(base_url, browser, person, rp):
    sign_in(browser, base_url, person)
    return tokens_for(
        browser, base_url, person, rp, scope="openid email offline_access"
    )


def _device_of(app, access_token: str) -> str:
    with app.app_context():
        device_id = db.session.get(
            Grant, unverified_claims(access_token)["gid"]
        ).device_id
        db.session.remove()
    return device_id


def _jwt(header: dict, claims: dict, sign) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{sign(f'{head}.{body}'.encode())}"


def _claims_like(access_token: str, **changes) -> dict:
    return {**unverified_claims(access_token), **changes}


# -- live tokens -----------------------------------------------------------------
def test_live_access_token(app, base_url, issuer, rs, rp, person, tokens):
    answer = introspection(base_url, rs, tokens["access_token"])
    claims = unverified_claims(tokens["access_token"])
    assert set(answer) >= ACCESS_FIELDS
    assert answer["active"] is True
    assert answer["token_type"] == "Bearer"  # RFC 7662 §2.2 -> RFC 6749 §5.1
    assert set(answer["scope"].split()) == {"openid", "email", "offline_access"}
    assert answer["client_id"] == rp.client_id
    assert answer["sub"] == person.id
    assert answer["iss"] == issuer
    assert answer["aud"] == rp.client_id
    assert answer["jti"] == claims["jti"]
    assert answer["iat"] == claims["iat"]
    assert answer["exp"] == claims["exp"] > time.time()
    assert answer["device_id"] == _device_of(app, tokens["access_token"])


def test_live_refresh_token(app, base_url, issuer, rs, rp, person, tokens):
    answer = introspection(base_url, rs, tokens["refresh_token"])
    assert set(answer) >= REFRESH_FIELDS
    assert answer["active"] is True
    assert answer["token_type"] == "refresh_token"
    assert set(answer["scope"].split()) == {"openid", "email", "offline_access"}
    assert answer["client_id"] == rp.client_id
    assert answer["sub"] == person.id
    assert answer["iss"] == issuer
    assert answer["exp"] > time.time() + 86400
    # The one place refresh expiry is computed, which rotation obeys too.
    settings = app.config["LATCHKEY"]
    with app.app_context():
        grant = db.session.get(
            Grant, grant_of_refresh_token(app, tokens["refresh_token"])
        )
        expires_at = grant.refresh_expires_at(
            timedelta(seconds=settings.refresh_token_idle_lifetime),
            timedelta(seconds=settings.refresh_token_absolute_lifetime),
        )
        db.session.remove()
    assert answer["exp"] == int(expires_at.timestamp())
    assert answer["iat"] <= time.time() + 1
    assert answer["device_id"] == _device_of(app, tokens["access_token"])
    # Asking is not using: the token still refreshes afterwards.
    assert refresh(base_url, rp, tokens["refresh_token"]).status_code == 200


def test_the_hint_orders_the_search_but_is_not_trusted(base_url, rs, tokens):
    for token in (tokens["access_token"], tokens["refresh_token"]):
        for hint in ("access_token", "refresh_token", "something_else"):
            assert introspection(base_url, rs, token, hint)["active"] is True


def test_client_credentials_token(base_url, rs, factories):
    service = factories.client(machine=True, scopes=["profile"])
    response = token_request(base_url, {"grant_type": "client_credentials"}, service)
    assert response.status_code == 200, response.text
    access = response.json()["access_token"]
    answer = introspection(base_url, rs, access)
    assert answer["active"] is True
    assert answer["client_id"] == answer["sub"] == service.client_id
    # Deleting the client is the "one client" cut-off.
    with factories.app.app_context():
        assert delete_client(service.client_id)
        db.session.commit()  # what `flask clients delete` ends with
        db.session.remove()
    assert_inactive(base_url, rs, access)


# -- dead tokens: active false and nothing else --------------------------------------
def test_revoked_access_token_is_inactive_at_once_everywhere(
    base_url, other_process, rs, rp, tokens
):
    assert revoke(base_url, rp, tokens["access_token"]).status_code == 200
    assert_inactive(base_url, rs, tokens["access_token"])
    assert_inactive(other_process, rs, tokens["access_token"])


def test_revoked_refresh_token_and_its_grant_are_inactive(
    base_url, other_process, rs, rp, tokens
):
    assert revoke(base_url, rp, tokens["refresh_token"]).status_code == 200
    for url in (base_url, other_process):
        assert_inactive(url, rs, tokens["refresh_token"])
        assert_inactive(url, rs, tokens["access_token"])


def test_rotated_out_refresh_token_is_inactive(base_url, rs, rp, tokens):
    newer = refresh(base_url, rp, tokens["refresh_token"]).json()
    assert_inactive(base_url, rs, tokens["refresh_token"])
    assert introspection(base_url, rs, newer["refresh_token"])["active"] is True
    # Access tokens of the grant stay live until they expire.
    assert introspection(base_url, rs, tokens["access_token"])["active"] is True


def test_expired_access_token(short_lived, rs, rp, tokens):
    # Minted by the server whose access tokens live one second.
    short = refresh(short_lived, rp, tokens["refresh_token"]).json()
    exp = unverified_claims(short["access_token"])["exp"]
    assert exp - time.time() <= 1.5
    time.sleep(max(0.0, exp - time.time()) + 0.2)
    assert_inactive(short_lived, rs, short["access_token"])
    # Its own client hears the same.
    assert introspection(short_lived, rp, short["access_token"]) == INACTIVE


def test_foreign_issuer_and_forged_tokens(base_url, issuer, rs, tokens):
    our_kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    own_key = ec.generate_private_key(ec.SECP256R1())
    elsewhere = _claims_like(tokens["access_token"], iss="https://idp.example.org")
    same_iss = _claims_like(tokens["access_token"])
    forged = [
        # Another issuer's well-formed token, signed with that issuer's key.
        jwt.encode(
            elsewhere,
            own_key,
            algorithm="ES256",
            headers={"kid": "other-kid", "typ": "at+jwt"},
        ),
        # Our issuer and kid, someone else's key.
        jwt.encode(
            same_iss,
            own_key,
            algorithm="ES256",
            headers={"kid": our_kid, "typ": "at+jwt"},
        ),
        # Our issuer, an unknown kid.
        jwt.encode(
            same_iss,
            own_key,
            algorithm="ES256",
            headers={"kid": "nope", "typ": "at+jwt"},
        ),
        # alg none, and HMAC keyed with something public (algorithm confusion).
        _jwt({"alg": "none", "kid": our_kid, "typ": "at+jwt"}, same_iss, lambda _: ""),
        _jwt(
            {"alg": "HS256", "kid": our_kid, "typ": "at+jwt"},
            same_iss,
            lambda data: b64url(
                hmac.new(our_kid.encode(), data, hashlib.sha256).digest()
            ),
        ),
    ]
    for token in forged:
        assert_inactive(base_url, rs, token)


def test_malformed_and_unknown_tokens(base_url, rs, tokens):
    head, body, _sig = tokens["access_token"].split(".")
    for token in (
        "not-a-token",
        "a.b.c",
        f"{head}.{body}.",
        f"{head}.{body}.AAAA",
        tokens["access_token"][:-4],
        "x" * 5000,
        secrets.token_urlsafe(32),  # looks like a refresh token, is not one
        tokens["refresh_token"][:-1],
    ):
        assert_inactive(base_url, rs, token)


def test_signed_out_device_tokens_are_inactive_at_once(
    app, base_url, other_process, rs, rp, tokens, browser
):
    device_id = _device_of(app, tokens["access_token"])
    response = sign_out_device(browser, base_url, device_id)
    assert response.status_code == 302
    for url in (base_url, other_process):
        assert_inactive(url, rs, tokens["access_token"])
        assert_inactive(url, rs, tokens["refresh_token"])


def test_sign_out_everywhere_makes_every_token_inactive(
    base_url, other_process, rs, tv, rp, person, tokens, browser
):
    tv_tokens = device_tokens(base_url, browser, tv)
    assert introspection(base_url, rs, tv_tokens["access_token"])["active"] is True
    assert sign_out_everywhere(browser, base_url).status_code == 302
    for url in (base_url, other_process):
        for token in (
            tokens["access_token"],
            tokens["refresh_token"],
            tv_tokens["access_token"],
            tv_tokens["refresh_token"],
        ):
            assert_inactive(url, rs, token)


# -- who may ask --------------------------------------------------------------------
def test_a_client_may_introspect_its_own_tokens(base_url, rp, tokens):
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = introspection(base_url, rp, token)
        assert answer["active"] is True
        assert answer["client_id"] == rp.client_id
    assert revoke(base_url, rp, tokens["refresh_token"]).status_code == 200
    assert introspection(base_url, rp, tokens["access_token"]) == INACTIVE
    assert introspection(base_url, rp, tokens["refresh_token"]) == INACTIVE


def test_other_clients_learn_only_that_a_token_is_inactive(base_url, factories, tokens):
    # RFC 7662 §2.2: a client that authenticates but may not introspect
    # other clients' tokens hears {"active": false} (200), exactly as for a
    # token that does not exist, so neither answer leaks anything.
    nosy = factories.client(name="Nosy app")
    for token in (
        tokens["access_token"],
        tokens["refresh_token"],
        "garbage",
        secrets.token_urlsafe(32),
    ):
        for hint in (None, "access_token", "refresh_token"):
            assert_inactive(base_url, nosy, token, hint)


def test_introspection_needs_client_authentication(base_url, rs, tv, tokens):
    token = tokens["access_token"]
    unauthenticated = requests.post(
        base_url + "/introspect", data={"token": token}, timeout=TIMEOUT
    )
    assert_json_error(unauthenticated, 401, "invalid_client")
    wrong_secret = introspect(base_url, rs, token, auth=(rs.client_id, "wrong"))
    assert_json_error(wrong_secret, 401, "invalid_client")
    unknown = introspect(base_url, rs, token, auth=("no-such-client", "secret"))
    assert_json_error(unknown, 401, "invalid_client")
    # A public client has no secret to prove itself with.
    public = requests.post(
        base_url + "/introspect",
        data={"token": token, "client_id": tv.client_id},
        timeout=TIMEOUT,
    )
    assert_json_error(public, 401, "invalid_client")
    for response in (unauthenticated, wrong_secret, unknown, public):
        assert "active" not in response.json()


def test_missing_token_is_invalid_request(base_url, rs):
    response = requests.post(
        base_url + "/introspect", auth=(rs.client_id, rs.secret), timeout=TIMEOUT
    )
    assert_json_error(response, 400, "invalid_request")
