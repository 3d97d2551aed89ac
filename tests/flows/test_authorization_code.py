"""Authorization code + PKCE (RFC 6749 §4.1, RFC 7636), OIDC Core ID tokens,
JWT access tokens (RFC 9068), userinfo, refresh rotation, consent and the
prompt / max_age / login_hint parameters, all against a live server."""

import secrets
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from requests_oauthlib import OAuth2Session
from sqlalchemy import update

from app.extensions import db
from app.models import BrowserSession
from app.models.base import utcnow
from tests.flows.helpers import (
    AuthRequest,
    assert_error_redirect,
    form_inputs,
    get_code,
    redeem_code,
    refresh,
    sign_in,
    tokens_for,
    userinfo,
    walk_authorize,
)
from tests.support.oauth import at_hash, verify_id_token, verify_jwt


def test_code_flow_with_pkce_driven_by_requests_oauthlib(
    base_url, issuer, jwks, person, rp, browser, monkeypatch
):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # http on loopback
    nonce = secrets.token_urlsafe(16)
    oauth = OAuth2Session(
        rp.client_id,
        redirect_uri=rp.redirect_uri,
        scope=["openid", "email", "profile"],
        pkce="S256",
    )
    url, state = oauth.authorization_url(base_url + "/authorize", nonce=nonce)
    sent = parse_qs(urlparse(url).query)
    assert sent["code_challenge_method"] == ["S256"]
    assert sent["code_challenge"][0]

    started = int(time.time())
    walk = walk_authorize(browser, base_url, url, account=person)
    assert walk.pages == ["login", "consent"]
    assert walk.redirect_base() == rp.redirect_uri
    query = walk.query
    assert query["code"]
    assert query["state"] == state
    assert query["iss"] == issuer  # RFC 9207
    assert "error" not in query

    token = oauth.fetch_token(
        base_url + "/token",
        authorization_response=walk.location,
        client_secret=rp.secret,
    )
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"]
    assert set(token["scope"]) == {"openid", "email", "profile"}

    id_claims = verify_id_token(
        token["id_token"],
        jwks,
        issuer,
        rp.client_id,
        nonce=nonce,
        access_token=token["access_token"],
        require=["nonce", "auth_time", "at_hash", "sid"],
    )
    assert id_claims["sub"] == person.id
    assert id_claims["nonce"] == nonce
    assert id_claims["at_hash"] == at_hash(token["access_token"])
    assert "pwd" in id_claims["amr"]
    assert started - 5 <= id_claims["auth_time"] <= int(time.time()) + 5
    assert id_claims["email"] == person.email
    assert id_claims["name"] == "Ada Lovelace"

    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt"  # RFC 9068 §2.1
    at_claims = verify_jwt(
        token["access_token"],
        jwks,
        issuer,
        rp.client_id,
        require=["client_id", "scope", "jti"],
    )
    assert at_claims["sub"] == person.id
    assert at_claims["client_id"] == rp.client_id
    assert set(at_claims["scope"].split()) == {"openid", "email", "profile"}
    assert at_claims["jti"]
    assert 0 < at_claims["exp"] - at_claims["iat"] <= 600
    assert at_claims["sid"] == id_claims["sid"]

    for method in ("GET", "POST"):
        info = userinfo(base_url, token["access_token"], method)
        assert info.status_code == 200, info.text
        assert info.json() == {
            "sub": person.id,
            "email": person.email,
            "email_verified": True,
            "name": "Ada Lovelace",
        }


@pytest.mark.parametrize(
    ("scope", "released", "withheld"),
    [
        ("openid", set(), {"email", "name"}),
        ("openid email", {"email"}, {"name"}),
        ("openid profile", {"name"}, {"email"}),
    ],
)
def test_userinfo_releases_claims_by_scope(
    base_url, person, rp, browser, scope, released, withheld
):
    token = tokens_for(browser, base_url, person, rp, scope=scope)
    for method in ("GET", "POST"):
        response = userinfo(base_url, token["access_token"], method)
        assert response.status_code == 200, response.text
        claims = response.json()
        assert claims["sub"] == person.id
        assert released <= set(claims)
        assert not withheld & set(claims)


def test_client_gets_no_scope_it_is_not_registered_for(
    base_url, issuer, jwks, person, factories, browser
):
    client = factories.client(scopes=["openid", "email"])
    token = tokens_for(browser, base_url, person, client, scope="openid email profile")
    assert set(token["scope"].split()) == {"openid", "email"}
    at_claims = verify_jwt(token["access_token"], jwks, issuer, client.client_id)
    assert set(at_claims["scope"].split()) == {"openid", "email"}
    id_claims = verify_id_token(token["id_token"], jwks, issuer, client.client_id)
    assert "name" not in id_claims
    info = userinfo(base_url, token["access_token"]).json()
    assert info["email"] == person.email
    assert "name" not in info
    renewed = refresh(base_url, client, token["refresh_token"]).json()
    assert set(renewed["scope"].split()) == {"openid", "email"}


def test_refresh_token_rotates(base_url, issuer, jwks, person, rp, browser):
    first = tokens_for(browser, base_url, person, rp)
    first_claims = verify_jwt(first["access_token"], jwks, issuer, rp.client_id)

    response = refresh(base_url, rp, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    claims = verify_jwt(second["access_token"], jwks, issuer, rp.client_id)
    assert claims["sub"] == person.id
    assert claims["sid"] == first_claims["sid"]
    assert claims["jti"] != first_claims["jti"]
    assert userinfo(base_url, second["access_token"]).status_code == 200

    # The successor is itself a working refresh token.
    third = refresh(base_url, rp, second["refresh_token"])
    assert third.status_code == 200, third.text
    assert third.json()["refresh_token"] not in (
        first["refresh_token"],
        second["refresh_token"],
    )


def test_rs256_client_gets_rs256_id_token(
    base_url, issuer, jwks, person, factories, browser
):
    client = factories.client(id_token_alg="RS256")
    auth = AuthRequest.make(client)
    token = tokens_for_auth(browser, base_url, person, auth)
    assert jwt.get_unverified_header(token["id_token"])["alg"] == "RS256"
    claims = verify_id_token(
        token["id_token"],
        jwks,
        issuer,
        client.client_id,
        nonce=auth.nonce,
        access_token=token["access_token"],
        require=["nonce"],
        alg="RS256",
    )
    assert claims["nonce"] == auth.nonce
    assert claims["at_hash"] == at_hash(token["access_token"])


def test_public_client_redeems_with_pkce_only(
    base_url, issuer, jwks, person, factories, browser
):
    client = factories.client(public=True)
    assert client.secret is None
    token = tokens_for(browser, base_url, person, client)
    claims = verify_id_token(token["id_token"], jwks, issuer, client.client_id)
    assert claims["sub"] == person.id


def tokens_for_auth(browser, base_url, person, auth: AuthRequest) -> dict:
    code = get_code(browser, base_url, auth, person)
    response = redeem_code(base_url, auth, code)
    assert response.status_code == 200, response.text
    return response.json()


# -- consent -----------------------------------------------------------------
def test_consent_is_remembered_for_the_same_scopes(base_url, person, rp, browser):
    first = walk_authorize(
        browser, base_url, AuthRequest.make(rp).params(), account=person
    )
    assert first.pages == ["login", "consent"]
    assert "code" in first.query

    again = walk_authorize(
        browser, base_url, AuthRequest.make(rp).params(), account=person
    )
    assert again.pages == []
    assert "code" in again.query

    # A scope not yet agreed to asks again.
    wider = AuthRequest.make(rp, scope="openid email profile offline_access")
    asked = walk_authorize(browser, base_url, wider.params(), account=person)
    assert asked.pages == ["consent"]
    assert "code" in asked.query


def test_first_party_client_skips_consent(base_url, person, factories, browser):
    client = factories.client(first_party=True)
    walk = walk_authorize(
        browser, base_url, AuthRequest.make(client).params(), account=person
    )
    assert walk.pages == ["login"]
    assert "code" in walk.query


def test_prompt_consent_asks_again(base_url, person, rp, browser):
    walk_authorize(browser, base_url, AuthRequest.make(rp).params(), account=person)
    auth = AuthRequest.make(rp, prompt="consent")
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    assert walk.pages == ["consent"]
    assert walk.query["state"] == auth.state
    assert "code" in walk.query


def test_prompt_none_without_session_is_login_required(base_url, issuer, rp, browser):
    auth = AuthRequest.make(rp, prompt="none")
    walk = walk_authorize(browser, base_url, auth.params())
    assert walk.pages == []
    assert_error_redirect(walk, rp.redirect_uri, "login_required", auth.state, issuer)


def test_prompt_none_without_consent_is_consent_required(
    base_url, issuer, person, rp, browser
):
    sign_in(browser, base_url, person)
    auth = AuthRequest.make(rp, prompt="none")
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    assert walk.pages == []
    assert_error_redirect(walk, rp.redirect_uri, "consent_required", auth.state, issuer)


def test_prompt_none_with_session_and_consent_issues_a_code(
    base_url, issuer, person, rp, browser
):
    walk_authorize(browser, base_url, AuthRequest.make(rp).params(), account=person)
    auth = AuthRequest.make(rp, prompt="none")
    walk = walk_authorize(browser, base_url, auth.params())
    assert walk.pages == []
    assert walk.query["state"] == auth.state
    assert walk.query["iss"] == issuer
    assert "code" in walk.query


@pytest.mark.parametrize("extra", [{"prompt": "login"}, {"max_age": "0"}])
def test_reauthentication_is_forced_when_signed_in(
    app, base_url, issuer, jwks, person, factories, browser, extra
):
    client = factories.client(first_party=True)
    sign_in(browser, base_url, person)
    old_session = browser.cookies.get("lk_session")
    backdate_sign_in(app, person, hours=1)
    before = int(time.time())

    auth = AuthRequest.make(client, **extra)
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    assert walk.pages == ["login"]
    assert walk.query["state"] == auth.state
    response = redeem_code(base_url, auth, walk.query["code"])
    assert response.status_code == 200, response.text
    claims = verify_id_token(
        response.json()["id_token"], jwks, issuer, client.client_id
    )
    assert claims["auth_time"] >= before
    assert browser.cookies.get("lk_session") != old_session


def test_max_age_honoured_when_recent_enough(app, base_url, person, factories, browser):
    client = factories.client(first_party=True)
    sign_in(browser, base_url, person)
    backdate_sign_in(app, person, hours=1)
    recent = AuthRequest.make(client, max_age="7200")
    walk = walk_authorize(browser, base_url, recent.params(), account=person)
    assert walk.pages == []
    assert "code" in walk.query

    stale = AuthRequest.make(client, max_age="1800")
    walk = walk_authorize(browser, base_url, stale.params(), account=person)
    assert walk.pages == ["login"]
    assert "code" in walk.query


def backdate_sign_in(app, account, hours: int) -> None:
    """Move the account's sign-ins into the past (as if time had passed)."""
    with app.app_context():
        db.session.execute(
            update(BrowserSession)
            .where(BrowserSession.account_id == account.id)
            .values(auth_time=utcnow() - timedelta(hours=hours))
        )
        db.session.commit()
        db.session.remove()


def test_login_hint_prefills_email(base_url, person, rp, browser):
    auth = AuthRequest.make(rp, login_hint=person.email)
    walk = walk_authorize(browser, base_url, auth.params())
    assert walk.pages == ["login"]
    assert form_inputs(walk.shown["login"].text)["email"] == person.email


def test_deny_redirects_with_access_denied(base_url, issuer, person, rp, browser):
    auth = AuthRequest.make(rp)
    walk = walk_authorize(
        browser, base_url, auth.params(), account=person, approve=False
    )
    assert walk.pages == ["login", "consent"]
    assert_error_redirect(walk, rp.redirect_uri, "access_denied", auth.state, issuer)

    # Denying remembers nothing: the next request asks again.
    again = walk_authorize(
        browser, base_url, AuthRequest.make(rp).params(), account=person, approve=None
    )
    assert again.pages == ["consent"]
