"""A person signs in and consents in a real browser; the relying party gets a
code that exchanges for tokens."""

import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests

from tests.support.chromium import answer_consent, submit_sign_in
from tests.support.oauth import jwks_client, pkce_pair, verify_id_token


def test_sign_in_consent_and_code_exchange(live_server, factories, page, relying_party):
    redirect_uri = relying_party.url + "/callback"
    client = factories.client(redirect_uri=redirect_uri, name="Browser RP")
    account = factories.account()
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email offline_access",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )

    page.goto(f"{live_server.url}/authorize?{query}")
    assert urlsplit(page.url).path == "/login"
    submit_sign_in(page, account)

    page.wait_for_selector("#approve")
    assert urlsplit(page.url).path == "/authorize"
    assert "Browser RP wants to use your account" in page.inner_text("h1")
    assert account.email in page.inner_text("body")
    answer_consent(page)

    page.wait_for_url(redirect_uri + "?*")
    assert "got it" in page.content()
    params = parse_qs(urlsplit(page.url).query)
    assert params["state"] == [state]
    assert params["iss"] == [live_server.url]  # RFC 9207
    (code,) = params["code"]
    # The navigation really reached the relying party, with the same query.
    (callback,) = [r for r in relying_party.requests if r.startswith("/callback")]
    assert parse_qs(urlsplit(callback).query) == params

    response = requests.post(
        live_server.url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.secret),
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert set(tokens["scope"].split()) == {
        "openid",
        "profile",
        "email",
        "offline_access",
    }
    assert tokens["refresh_token"]
    access_header = jwt.get_unverified_header(tokens["access_token"])
    assert access_header["typ"].lower() == "at+jwt"
    claims = verify_id_token(
        tokens["id_token"],
        jwks_client(live_server.url),
        live_server.url,
        client.client_id,
        nonce=nonce,
        access_token=tokens["access_token"],
    )
    assert claims["sub"] == account.id
    assert claims["nonce"] == nonce
    assert claims["email"] == account.email
    assert claims["amr"] == ["pwd"]

    # The code is single-use (RFC 6749 §4.1.2).
    replay = requests.post(
        live_server.url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.secret),
        timeout=5,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
