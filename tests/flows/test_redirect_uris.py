"""Which redirect URI a code goes to, and what /token must say about it.

RFC 6749 §4.1.3: redirect_uri is required at /token only if /authorize was
sent one, and then it must be identical. OIDC Core §3.1.2.1: an OpenID
request must send redirect_uri. RFC 8252 §7.3: for http on a loopback IP
literal (127.0.0.1, [::1]; not localhost) any port is accepted, and
everything else must still match exactly."""

import pytest

from tests.flows.helpers import (
    TIMEOUT,
    AuthRequest,
    assert_error_page,
    assert_json_error,
    get_code,
    redeem_code,
    walk_authorize,
)


def _without_redirect_uri(auth: AuthRequest) -> dict:
    params = auth.params()
    del params["redirect_uri"]
    return params


def _code(walk) -> str:
    query = walk.query
    assert "code" in query, walk.location
    return query["code"]


# -- absent stays absent ---------------------------------------------------------
def test_absent_at_authorize_and_token_gives_tokens(base_url, rp, person, browser):
    auth = AuthRequest.make(rp, scope="profile")
    walk = walk_authorize(browser, base_url, _without_redirect_uri(auth), person)
    # The code goes to the only registered URI...
    assert walk.redirect_base() == rp.redirect_uri
    assert walk.query["state"] == auth.state
    # ...and /token need not name it (RFC 6749 §4.1.3).
    response = redeem_code(base_url, auth, _code(walk), redirect_uri=None)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def test_absent_at_authorize_then_the_default_at_token_is_fine(
    base_url, rp, person, browser
):
    auth = AuthRequest.make(rp, scope="profile")
    walk = walk_authorize(browser, base_url, _without_redirect_uri(auth), person)
    response = redeem_code(base_url, auth, _code(walk))
    assert response.status_code == 200, response.text


def test_absent_at_authorize_then_another_uri_at_token_is_invalid_grant(
    base_url, rp, person, browser
):
    auth = AuthRequest.make(rp, scope="profile")
    walk = walk_authorize(browser, base_url, _without_redirect_uri(auth), person)
    response = redeem_code(
        base_url, auth, _code(walk), redirect_uri="https://attacker.example/cb"
    )
    assert_json_error(response, 400, "invalid_grant")


def test_sent_at_authorize_must_be_sent_identically_at_token(
    base_url, rp, person, browser
):
    for at_token in (None, "", rp.redirect_uri + "/", "http://127.0.0.1:1/callback"):
        auth = AuthRequest.make(rp, scope="profile")
        code = get_code(browser, base_url, auth, person)
        response = redeem_code(base_url, auth, code, redirect_uri=at_token)
        assert_json_error(response, 400, "invalid_grant")


@pytest.mark.parametrize("scope", ["openid", "openid profile", "profile openid"])
def test_openid_request_without_redirect_uri_is_refused(
    base_url, rp, person, browser, scope
):
    auth = AuthRequest.make(rp, scope=scope)
    response = browser.get(
        base_url + "/authorize",
        params=_without_redirect_uri(auth),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    # Not sent anywhere: the request named no URI to answer to.
    assert_error_page(response, "invalid_request")


# -- loopback redirects for native apps ----------------------------------------------
@pytest.fixture
def native(factories):
    return factories.client(redirect_uri="http://127.0.0.1/cb", public=True)


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/cb", "http://127.0.0.1:53123/cb"),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:53123/cb"),
        ("http://127.0.0.1/cb?app=1", "http://127.0.0.1:53123/cb?app=1"),
        ("http://[::1]/cb", "http://[::1]:53123/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1/cb"),
    ],
)
def test_any_port_on_a_loopback_ip_literal(
    base_url, factories, person, browser, registered, requested
):
    native = factories.client(redirect_uri=registered, public=True)
    auth = AuthRequest.make(native, redirect_uri=requested)
    walk = walk_authorize(browser, base_url, auth.params(), person)
    assert walk.location.startswith(requested)
    assert walk.query["state"] == auth.state
    code = _code(walk)
    response = redeem_code(base_url, auth, code, redirect_uri=requested)
    assert response.status_code == 200, response.text


def test_token_must_name_the_port_authorize_was_sent(base_url, native, person, browser):
    for at_token in ("http://127.0.0.1/cb", "http://127.0.0.1:53124/cb"):
        auth = AuthRequest.make(native, redirect_uri="http://127.0.0.1:53123/cb")
        walk = walk_authorize(browser, base_url, auth.params(), person)
        response = redeem_code(base_url, auth, _code(walk), redirect_uri=at_token)
        assert_json_error(response, 400, "invalid_grant")


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/cb", "https://127.0.0.1:53123/cb"),
        ("http://127.0.0.1/cb", "HTTP://127.0.0.1:53123/cb"),
        ("http://localhost/cb", "http://localhost:53123/cb"),
        ("http://127.0.0.1/cb", "http://localhost:53123/cb"),
        ("http://127.0.0.1/cb", "http://[::1]:53123/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:53123/cb/"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:53123/other"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:53123/cb?x=1"),
        ("http://127.0.0.1/cb?app=1", "http://127.0.0.1:53123/cb?app=2"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:53123/cb#frag"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:53123@attacker.example/cb"),
        ("http://127.0.0.1/cb", "http://user@127.0.0.1:53123/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:99999/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:port/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:/cb"),
    ],
)
def test_everything_but_the_port_still_matches_exactly(
    base_url, factories, person, browser, registered, requested
):
    native = factories.client(redirect_uri=registered, public=True)
    auth = AuthRequest.make(native, redirect_uri=requested)
    response = browser.get(
        base_url + "/authorize",
        params=auth.params(),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert_error_page(response, "invalid_request")
