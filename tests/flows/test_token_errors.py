"""/token with bad input (RFC 6749 §5.2): client authentication failures,
bad codes and verifiers, code replay (which revokes what the code issued),
unsupported and unauthorized grant types, oversized and malformed requests."""

import base64
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

from app.extensions import db
from app.models import AuthorizationCode
from app.models.base import utcnow
from app.security.opaque_tokens import hash_token
from tests.flows.helpers import (
    TIMEOUT,
    AuthRequest,
    assert_json_error,
    get_code,
    redeem_code,
    refresh,
    token_request,
    userinfo,
)
from tests.support.oauth import pkce_pair


@pytest.fixture
def code_for(base_url, person, browser):
    """Run an authorization for a client; returns (AuthRequest, code)."""

    def run(client, **options):
        auth = AuthRequest.make(client, **options)
        return auth, get_code(browser, base_url, auth, person)

    return run


def code_grant(auth: AuthRequest, code: str) -> dict:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": auth.client.redirect_uri,
        "code_verifier": auth.verifier,
    }


def assert_invalid_client(response: requests.Response):
    assert_json_error(response, 401, "invalid_client")
    # RFC 6749 §5.2: a 401 names the scheme the client should use.
    assert response.headers["WWW-Authenticate"].lower().startswith("basic")


# -- client authentication ------------------------------------------------------
def test_wrong_secret_with_basic_is_invalid_client(base_url, rp, code_for):
    auth, code = code_for(rp)
    response = requests.post(
        base_url + "/token",
        data=code_grant(auth, code),
        auth=(rp.client_id, "not-the-secret"),
        timeout=TIMEOUT,
    )
    assert_invalid_client(response)
    # The code was not spent by the failed attempt.
    assert redeem_code(base_url, auth, code).status_code == 200


def test_wrong_secret_with_post_is_invalid_client(base_url, rp, code_for):
    auth, code = code_for(rp)
    response = requests.post(
        base_url + "/token",
        data={
            **code_grant(auth, code),
            "client_id": rp.client_id,
            "client_secret": "not-the-secret",
        },
        timeout=TIMEOUT,
    )
    assert_invalid_client(response)


def test_right_secret_with_post_works(base_url, rp, code_for):
    auth, code = code_for(rp)
    response = requests.post(
        base_url + "/token",
        data={
            **code_grant(auth, code),
            "client_id": rp.client_id,
            "client_secret": rp.secret,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


@pytest.mark.parametrize("via", ["basic", "post"])
def test_unknown_client_is_invalid_client(base_url, via):
    data = {"grant_type": "client_credentials"}
    auth = None
    if via == "basic":
        auth = ("no-such-client", "secret")
    else:
        data.update(client_id="no-such-client", client_secret="secret")
    response = requests.post(base_url + "/token", data=data, auth=auth, timeout=TIMEOUT)
    assert_invalid_client(response)


def test_no_client_authentication_is_invalid_client(base_url, rp):
    response = requests.post(
        base_url + "/token",
        data={"grant_type": "client_credentials"},
        timeout=TIMEOUT,
    )
    assert_invalid_client(response)


def test_confidential_client_cannot_skip_its_secret(base_url, rp, code_for):
    auth, code = code_for(rp)
    response = requests.post(
        base_url + "/token",
        data={**code_grant(auth, code), "client_id": rp.client_id},
        timeout=TIMEOUT,
    )
    assert_invalid_client(response)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        "Basic " + _b64(b"no-colon-here"),
        "Basic " + _b64(b"\xff\xfe:\xfd"),
        "Basic " + _b64(b"%00:secret"),
        "Basic " + _b64(b"nul\x00id:secret"),
        "Basic " + _b64(b"x" * 300 + b":y"),
        "Basic " + _b64(b":"),
        "Basic caf\xe9",
        "Bearer something",
        "Digest username=x",
        "garbage",
    ],
)
def test_malformed_authorization_header_is_invalid_client_not_500(base_url, header):
    response = requests.post(
        base_url + "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": header.encode("latin-1")},
        timeout=TIMEOUT,
    )
    assert_invalid_client(response)


@pytest.mark.parametrize("client_id", ["nul\x00id", "x" * 300, "%00"])
def test_odd_client_id_in_body_is_invalid_client_not_500(base_url, client_id):
    response = requests.post(
        base_url + "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": "s",
        },
        timeout=TIMEOUT,
    )
    assert_invalid_client(response)


# -- the authorization code -------------------------------------------------------
def test_wrong_code_verifier_is_invalid_grant(base_url, rp, code_for):
    auth, code = code_for(rp)
    response = redeem_code(base_url, auth, code, code_verifier=pkce_pair()[0])
    assert_json_error(response, 400, "invalid_grant")


def test_missing_code_verifier_is_invalid_request(base_url, rp, code_for):
    auth, code = code_for(rp)
    data = code_grant(auth, code)
    del data["code_verifier"]
    response = token_request(base_url, data, client=rp)
    assert_json_error(response, 400, "invalid_request")
    # The code is not spent: with its verifier it still works.
    assert redeem_code(base_url, auth, code).status_code == 200


def test_verifier_without_a_challenge_is_invalid_request(base_url, factories, code_for):
    # RFC 9700 §4.8.2: a code_verifier for a code issued without PKCE.
    client = factories.client(pkce_exempt=True)
    auth, code = code_for(client, pkce=False)
    response = redeem_code(base_url, auth, code, code_verifier=pkce_pair()[0])
    assert_json_error(response, 400, "invalid_request")


def test_code_issued_to_another_client_is_invalid_grant(
    base_url, rp, factories, code_for
):
    auth, code = code_for(rp)
    other = factories.client()
    response = token_request(base_url, code_grant(auth, code), client=other)
    assert_json_error(response, 400, "invalid_grant")
    # ... and the rightful client can still redeem it.
    assert redeem_code(base_url, auth, code).status_code == 200


@pytest.mark.parametrize(
    "redirect_uri",
    ["http://127.0.0.1:8765/other", "http://127.0.0.1:8765/callback/", ""],
)
def test_wrong_redirect_uri_is_invalid_grant(base_url, rp, code_for, redirect_uri):
    auth, code = code_for(rp)
    response = redeem_code(base_url, auth, code, redirect_uri=redirect_uri)
    assert_json_error(response, 400, "invalid_grant")


def test_unknown_code_is_invalid_grant(base_url, rp, code_for):
    auth, _code = code_for(rp)
    for bogus in ("not-a-code", "x" * 500, "nul\x00code"):
        response = redeem_code(base_url, auth, bogus)
        assert_json_error(response, 400, "invalid_grant")


def test_expired_code_is_invalid_grant(app, base_url, rp, code_for):
    auth, code = code_for(rp)
    with app.app_context():
        db.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == hash_token(code))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        db.session.remove()
    response = redeem_code(base_url, auth, code)
    assert_json_error(response, 400, "invalid_grant")


def test_missing_code_is_invalid_request(base_url, rp, code_for):
    auth, code = code_for(rp)
    data = code_grant(auth, code)
    del data["code"]
    response = token_request(base_url, data, client=rp)
    assert_json_error(response, 400, "invalid_request")


def test_replayed_code_is_rejected_and_revokes_its_tokens(
    base_url, issuer, rp, code_for
):
    auth, code = code_for(rp)
    first = redeem_code(base_url, auth, code)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert userinfo(base_url, tokens["access_token"]).status_code == 200

    replay = redeem_code(base_url, auth, code)
    assert_json_error(replay, 400, "invalid_grant")
    assert "access_token" not in replay.json()

    # RFC 6749 §4.1.2 / RFC 9700 §4.2.4: what the code issued is revoked.
    assert_json_error(
        refresh(base_url, rp, tokens["refresh_token"]), 400, "invalid_grant"
    )
    revoked = userinfo(base_url, tokens["access_token"])
    assert_json_error(revoked, 401, "invalid_token")
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]
    revoked_post = userinfo(base_url, tokens["access_token"], method="POST")
    assert_json_error(revoked_post, 401, "invalid_token")


def test_replay_by_another_client_does_not_revoke(base_url, rp, factories, code_for):
    """A client that never held the code cannot use it to revoke someone
    else's grant: the code is not even visible to it."""
    auth, code = code_for(rp)
    tokens = redeem_code(base_url, auth, code).json()
    other = factories.client()
    response = token_request(base_url, code_grant(auth, code), client=other)
    assert_json_error(response, 400, "invalid_grant")
    assert userinfo(base_url, tokens["access_token"]).status_code == 200


# -- grant types ------------------------------------------------------------------
@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "implicit",
        "token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "nonsense",
    ],
)
def test_unsupported_grant_type(base_url, rp, person, grant_type):
    response = token_request(
        base_url,
        {
            "grant_type": grant_type,
            "username": person.email,
            "password": person.password,
        },
        client=rp,
    )
    assert_json_error(response, 400, "unsupported_grant_type")


def test_missing_grant_type_is_rejected(base_url, rp):
    response = token_request(base_url, {}, client=rp)
    assert "Traceback" not in response.text
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "unsupported_grant_type")


def test_client_not_allowed_client_credentials_is_unauthorized_client(base_url, rp):
    # rp may use authorization_code and refresh_token only.
    response = token_request(base_url, {"grant_type": "client_credentials"}, client=rp)
    assert_json_error(response, 400, "unauthorized_client")


def test_client_not_allowed_refresh_is_unauthorized_client(
    base_url, factories, code_for
):
    client = factories.client(grant_types=["authorization_code"])
    auth, code = code_for(client)
    tokens = redeem_code(base_url, auth, code).json()
    assert "refresh_token" not in tokens
    response = refresh(base_url, client, "anything")
    assert_json_error(response, 400, "unauthorized_client")


def test_client_not_allowed_authorization_code_is_unauthorized_client(
    base_url, factories
):
    client = factories.client(machine=True)
    response = token_request(
        base_url,
        {
            "grant_type": "authorization_code",
            "code": "whatever",
            "code_verifier": pkce_pair()[0],
        },
        client=client,
    )
    assert_json_error(response, 400, "unauthorized_client")


def test_refresh_token_of_another_client_is_invalid_grant(
    base_url, rp, factories, code_for
):
    auth, code = code_for(rp)
    tokens = redeem_code(base_url, auth, code).json()
    other = factories.client()
    response = refresh(base_url, other, tokens["refresh_token"])
    assert_json_error(response, 400, "invalid_grant")
    # The rightful client's token still works.
    assert refresh(base_url, rp, tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize("value", ["", "not-a-token", "x" * 500])
def test_bad_refresh_token(base_url, rp, value):
    response = refresh(base_url, rp, value)
    expected = "invalid_request" if not value else "invalid_grant"
    assert_json_error(response, 400, expected)


# -- the HTTP envelope -----------------------------------------------------------
def test_body_over_64_kib_is_413(base_url, rp):
    response = requests.post(
        base_url + "/token",
        data={"grant_type": "client_credentials", "padding": "x" * (65 * 1024)},
        auth=(rp.client_id, rp.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 413
    assert "Traceback" not in response.text


def test_token_endpoint_rejects_get(base_url, rp):
    response = requests.get(
        base_url + "/token",
        params={"grant_type": "client_credentials"},
        auth=(rp.client_id, rp.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 405
    assert "Traceback" not in response.text


def test_token_errors_are_not_cached(base_url):
    response = requests.post(
        base_url + "/token", data={"grant_type": "password"}, timeout=TIMEOUT
    )
    assert response.status_code in (400, 401)
    assert "no-store" in response.headers.get("Cache-Control", "")


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Bearer not.a.jwt", "Basic abc"]
)
def test_userinfo_without_a_valid_token_is_401(base_url, header):
    response = requests.get(
        base_url + "/userinfo", headers={"Authorization": header}, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert "Traceback" not in response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
