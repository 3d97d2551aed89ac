"""Every endpoint that reads a JWT it did not make, against every malformed
JOSE Header and token shape in tests/untrusted_jwts.py: the right 4xx (or
RFC 7662 / RFC 7009's 200), never a 500, and nothing changes.

Endpoints: /userinfo (Authorization header and form body, RFC 6750 §2.1 and
§2.2), /introspect, /revoke, and /logout/end's id_token_hint (GET and POST).
The upstream's ID token and logout token are in tests/federation/.
"""

import pytest
import requests

from tests.flows.device_helpers import INACTIVE, introspect, revoke
from tests.flows.helpers import TIMEOUT, sign_in, tokens_for
from tests.untrusted_jwts import bad_tokens, plausible_claims


@pytest.fixture(scope="module")
def our_kid(live_server):
    discovery = requests.get(
        live_server.url + "/.well-known/openid-configuration", timeout=TIMEOUT
    ).json()
    keys = requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json()["keys"]
    return next(k["kid"] for k in keys if k["alg"] == "ES256")


def _access_tokens(issuer, kid, client_id):
    claims = plausible_claims(issuer, client_id, client_id=client_id, scope="openid")
    return bad_tokens(kid, "at+jwt", claims)


def _id_tokens(issuer, kid, client_id):
    claims = plausible_claims(issuer, client_id, sid="x" * 22)
    return bad_tokens(kid, "JWT", claims, wrong_typ="at+jwt")


def _assert_invalid_token(response, name):
    assert "Traceback" not in response.text, name
    assert response.status_code == 401, (name, response.status_code, response.text)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], name
    assert response.json()["error"] == "invalid_token", name


def test_example_kid_list_at_userinfo_is_invalid_token(base_url):
    # The reported input: any payload, any signature.
    head = "eyJhbGciOiJFUzI1NiIsImtpZCI6WyJ4Il0sInR5cCI6ImF0K2p3dCJ9"
    assert head.startswith("eyJ")  # {"alg":"ES256","kid":["x"],"typ":"at+jwt"}
    response = requests.get(
        base_url + "/userinfo",
        headers={"Authorization": f"Bearer {head}.e30.c2ln"},
        timeout=TIMEOUT,
    )
    _assert_invalid_token(response, "kid-list")


def test_userinfo(base_url, issuer, our_kid, rp):
    for name, token in _access_tokens(issuer, our_kid, rp.client_id).items():
        posted = requests.post(
            base_url + "/userinfo", data={"access_token": token}, timeout=TIMEOUT
        )
        _assert_invalid_token(posted, name)
        if name in ("huge", "non-ascii", "spaces"):
            continue  # not a header value a client can send (RFC 9110 §5.5)
        in_header = requests.get(
            base_url + "/userinfo",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
        _assert_invalid_token(in_header, name)


def test_introspection_says_inactive(base_url, issuer, our_kid, rs):
    for name, token in _access_tokens(issuer, our_kid, rs.client_id).items():
        response = introspect(base_url, rs, token)
        assert response.status_code == 200, (name, response.text)
        assert response.json() == INACTIVE, name


def test_revocation_of_a_malformed_token_is_not_an_error(
    base_url, issuer, our_kid, rp, person, browser
):
    sign_in(browser, base_url, person)
    live = tokens_for(browser, base_url, person, rp)
    for name, token in _access_tokens(issuer, our_kid, rp.client_id).items():
        response = revoke(base_url, rp, token)
        # RFC 7009 §2.2: an invalid token is not an error.
        assert response.status_code == 200, (name, response.text)
    # Nothing changed: the client's real tokens are still live.
    check = requests.get(
        base_url + "/userinfo",
        headers={"Authorization": f"Bearer {live['access_token']}"},
        timeout=TIMEOUT,
    )
    assert check.status_code == 200, check.text


def _assert_logout_refused(response, name):
    assert "Traceback" not in response.text, name
    assert response.status_code == 400, (name, response.status_code)
    assert response.headers["Content-Type"].startswith("text/html"), name
    assert "Location" not in response.headers, name


def test_id_token_hint_at_end_session(base_url, issuer, our_kid, rp, person, browser):
    sign_in(browser, base_url, person)
    for name, token in _id_tokens(issuer, our_kid, rp.client_id).items():
        posted = browser.post(
            base_url + "/logout/end",
            data={"id_token_hint": token},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        _assert_logout_refused(posted, name)
        if name == "huge":
            continue  # a 9 KB query is refused by the HTTP server itself
        got = browser.get(
            base_url + "/logout/end",
            params={"id_token_hint": token},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        _assert_logout_refused(got, name)
    # Nothing was ended: the person is still signed in.
    account = browser.get(base_url + "/account", allow_redirects=False, timeout=TIMEOUT)
    assert account.status_code == 200
