"""/authorize with bad input: errors go back to the client only once the
client and its redirect URI are trusted (RFC 6749 §4.1.2.1, RFC 9700
§4.1.3); otherwise the person sees a local error page. Also CSRF on the
login and consent forms."""

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuthorizationCode, BrowserSession, Client, Consent
from tests.flows.helpers import (
    TIMEOUT,
    AuthRequest,
    assert_error_page,
    assert_error_redirect,
    csrf_token,
    form_action,
    form_inputs,
    is_consent_page,
    is_login_page,
    redeem_code,
    sign_in,
    walk_authorize,
)
from tests.support.oauth import pkce_pair

OTHER_URI = "https://attacker.example/callback"


def count_rows(app, model) -> int:
    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(model)).scalar_one()
        db.session.remove()
    return n


@pytest.mark.parametrize("client_id", ["no-such-client", "x" * 65, "nul\x00id", ""])
@pytest.mark.parametrize("signed_in", [False, True])
def test_unknown_client_gets_an_error_page(
    base_url, person, browser, client_id, signed_in
):
    if signed_in:
        sign_in(browser, base_url, person)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": OTHER_URI,
        "scope": "openid",
        "state": "s",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    response = browser.get(
        base_url + "/authorize", params=params, allow_redirects=False, timeout=TIMEOUT
    )
    assert_error_page(response, "invalid_client" if client_id else None)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        OTHER_URI,
        "http://127.0.0.1:8765/callback/",
        "http://127.0.0.1:8765/callback/../evil",
        "http://127.0.0.1:8765/callback?x=1",
        "http://127.0.0.1:8765/callbackx",
        # Another port is fine on a loopback IP literal (RFC 8252 §7.3; see
        # test_redirect_uris.py), but not on another host or scheme.
        "http://localhost:8765/callback",
        "https://127.0.0.1:8765/callback",
        "HTTP://127.0.0.1:8765/callback",
    ],
)
@pytest.mark.parametrize("signed_in", [False, True])
def test_unregistered_redirect_uri_is_never_followed(
    base_url, person, rp, browser, redirect_uri, signed_in
):
    if signed_in:
        sign_in(browser, base_url, person)
    params = {**AuthRequest.make(rp).params(), "redirect_uri": redirect_uri}
    response = browser.get(
        base_url + "/authorize", params=params, allow_redirects=False, timeout=TIMEOUT
    )
    assert_error_page(response, "invalid_request")


def test_missing_redirect_uri_with_two_registered_is_an_error_page(
    base_url, factories, browser
):
    client = factories.client()
    with factories.app.app_context():
        row = db.session.get(Client, client.client_id)
        row.redirect_uris = [client.redirect_uri, "http://127.0.0.1:8765/other"]
        db.session.commit()
        db.session.remove()
    params = AuthRequest.make(client).params()
    del params["redirect_uri"]
    response = browser.get(
        base_url + "/authorize", params=params, allow_redirects=False, timeout=TIMEOUT
    )
    assert_error_page(response)


UNSUPPORTED_RESPONSE_TYPES = ["token", "id_token", "code token", ""]


@pytest.mark.parametrize("response_type", UNSUPPORTED_RESPONSE_TYPES)
def test_unsupported_response_type_is_redirected(
    base_url, issuer, rp, browser, response_type
):
    auth = AuthRequest.make(rp, response_type=response_type)
    walk = walk_authorize(browser, base_url, auth.params())
    assert_error_redirect(
        walk, rp.redirect_uri, "unsupported_response_type", auth.state, issuer
    )


@pytest.mark.parametrize("response_type", UNSUPPORTED_RESPONSE_TYPES)
def test_unsupported_response_type_to_a_foreign_uri_is_an_error_page(
    base_url, rp, browser, response_type
):
    params = {
        **AuthRequest.make(rp, response_type=response_type).params(),
        "redirect_uri": OTHER_URI,
    }
    response = browser.get(
        base_url + "/authorize", params=params, allow_redirects=False, timeout=TIMEOUT
    )
    assert_error_page(response)


@pytest.mark.parametrize("public", [True, False])
@pytest.mark.parametrize("signed_in", [False, True])
def test_missing_code_challenge_is_invalid_request(
    base_url, issuer, person, factories, browser, public, signed_in
):
    client = factories.client(public=public)
    if signed_in:
        sign_in(browser, base_url, person)
    auth = AuthRequest.make(client, pkce=False)
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    assert walk.pages == []
    query = assert_error_redirect(
        walk, client.redirect_uri, "invalid_request", auth.state, issuer
    )
    assert "code_challenge" in query["error_description"]


@pytest.mark.parametrize("method", ["plain", "S512", ""])
def test_code_challenge_method_other_than_s256_is_invalid_request(
    base_url, issuer, rp, browser, method
):
    auth = AuthRequest.make(rp, code_challenge_method=method)
    walk = walk_authorize(browser, base_url, auth.params())
    assert_error_redirect(walk, rp.redirect_uri, "invalid_request", auth.state, issuer)


def test_public_client_cannot_be_pkce_exempt(factories):
    from app.clients.services import InvalidClientMetadata

    with pytest.raises(InvalidClientMetadata):
        factories.client(public=True, pkce_exempt=True)


def test_pkce_exempt_confidential_client_may_omit_pkce(
    base_url, issuer, person, factories, browser
):
    client = factories.client(pkce_exempt=True)
    auth = AuthRequest.make(client, pkce=False)
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    assert walk.pages == ["login", "consent"]
    assert walk.query["iss"] == issuer
    response = redeem_code(base_url, auth, walk.query["code"])
    assert response.status_code == 200, response.text
    assert response.json()["id_token"]


@pytest.mark.parametrize(
    "scope", ["openid admin", "openid\x00", "openid email write:everything"]
)
def test_unknown_scope_is_invalid_scope(base_url, issuer, rp, browser, scope):
    auth = AuthRequest.make(rp, scope=scope)
    walk = walk_authorize(browser, base_url, auth.params())
    assert_error_redirect(walk, rp.redirect_uri, "invalid_scope", auth.state, issuer)


@pytest.mark.parametrize("scope", ["openid email", "email"])
def test_nonce_with_a_nul_byte_is_refused_not_500(
    base_url, issuer, person, rp, browser, scope
):
    auth = AuthRequest.make(rp, scope=scope)
    auth.nonce = "bad\x00nonce"
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    assert_error_redirect(walk, rp.redirect_uri, "invalid_request", auth.state, issuer)


@pytest.mark.parametrize("email", ["nul\x00@example.com", "\x00", "x" * 400])
def test_odd_email_at_login_is_a_plain_failure(base_url, browser, email):
    page = browser.get(base_url + "/login", timeout=TIMEOUT)
    response = browser.post(
        base_url + "/login",
        data={"csrf_token": csrf_token(page.text), "email": email, "password": "pw"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert "Traceback" not in response.text
    assert response.status_code in (400, 401)
    assert 'name="password"' in response.text  # the login form again
    assert "lk_session" not in browser.cookies


# -- CSRF ---------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_consent_post_without_csrf_token_changes_nothing(
    app, base_url, person, rp, browser, token
):
    auth = AuthRequest.make(rp)
    walk = walk_authorize(
        browser, base_url, auth.params(), account=person, approve=None
    )
    assert walk.pages == ["login", "consent"]
    page = walk.shown["consent"]
    data = {"approve": "Allow"}
    if token is not None:
        data["csrf_token"] = token
    response = browser.post(
        form_action(page), data=data, allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Traceback" not in response.text
    assert count_rows(app, Consent) == 0
    assert count_rows(app, AuthorizationCode) == 0

    # The person is still asked, and the real form still works.
    again = browser.get(page.url, allow_redirects=False, timeout=TIMEOUT)
    assert is_consent_page(again)
    assert csrf_token(again.text)


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_login_post_without_csrf_token_changes_nothing(
    app, base_url, person, rp, browser, token
):
    auth = AuthRequest.make(rp)
    walk = walk_authorize(browser, base_url, auth.params())
    assert walk.pages == ["login"]
    page = walk.shown["login"]
    data = {
        "email": person.email,
        "password": person.password,
        "next": form_inputs(page.text)["next"],
    }
    if token is not None:
        data["csrf_token"] = token
    response = browser.post(
        base_url + "/login", data=data, allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Traceback" not in response.text
    assert "lk_session" not in browser.cookies
    assert "lk_session" not in response.headers.get("Set-Cookie", "")
    assert count_rows(app, BrowserSession) == 0

    # Still signed out: /authorize sends the person to the login page again.
    again = walk_authorize(browser, base_url, auth.params())
    assert again.pages == ["login"]
    assert is_login_page(again.shown["login"])
