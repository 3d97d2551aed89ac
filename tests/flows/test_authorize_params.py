"""The authorization request's bindings and parameters (OIDC Core §3.1.2):
the form POST binding works like GET while the consent answer keeps its
own CSRF protection; parameters discovery calls unsupported are refused
with their own error codes; max_age is a non-negative integer, and one
fresh sign-in satisfies the request that asked for it, once."""

import json
from urllib.parse import urlencode, urljoin, urlparse

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuthorizationCode, Consent
from tests.flows.helpers import (
    TIMEOUT,
    AuthRequest,
    Walk,
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
from tests.support.oauth import b64url, verify_id_token


def _rows(app, model) -> int:
    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(model)).scalar_one()
        db.session.remove()
    return n


def _post_authorize(browser, base_url, params) -> requests.Response:
    return browser.post(
        base_url + "/authorize", data=params, allow_redirects=False, timeout=TIMEOUT
    )


# -- the POST binding -------------------------------------------------------------
def test_form_post_authorization_request_works_like_get(
    base_url, issuer, jwks, rp, person, browser
):
    auth = AuthRequest.make(rp)
    response = _post_authorize(browser, base_url, auth.params())
    # Not "The CSRF token is missing": off to sign in, then back as a GET.
    assert response.status_code == 302, response.text[:300]
    login = urljoin(base_url, response.headers["Location"])
    assert urlparse(login).path == "/login"
    walk = walk_authorize(browser, base_url, login, account=person)
    assert walk.pages == ["login", "consent"]
    assert walk.query["state"] == auth.state
    assert walk.query["iss"] == issuer
    tokens = redeem_code(base_url, auth, walk.query["code"])
    assert tokens.status_code == 200, tokens.text
    claims = verify_id_token(tokens.json()["id_token"], jwks, issuer, rp.client_id)
    assert claims["nonce"] == auth.nonce


def test_form_post_when_signed_in_and_consented_issues_a_code(
    base_url, issuer, rp, person, browser
):
    walk_authorize(browser, base_url, AuthRequest.make(rp).params(), account=person)
    auth = AuthRequest.make(rp)
    walk = Walk(_post_authorize(browser, base_url, auth.params()))
    assert walk.redirect_base() == rp.redirect_uri
    assert walk.query["state"] == auth.state
    assert "code" in walk.query


def test_form_post_errors_are_the_same_as_get(base_url, issuer, rp, browser):
    auth = AuthRequest.make(rp, response_type="token")
    walk = Walk(_post_authorize(browser, base_url, auth.params()))
    assert_error_redirect(
        walk, rp.redirect_uri, "unsupported_response_type", auth.state, issuer
    )


def test_a_consent_answer_posted_to_authorize_is_not_an_answer(
    app, base_url, rp, person, browser
):
    auth = AuthRequest.make(rp)
    walk = walk_authorize(browser, base_url, auth.params(), person, approve=None)
    page = walk.shown["consent"]
    # The old way to answer: a POST to /authorize. It is a new request now,
    # so the person is asked again and nothing is granted.
    again = _post_authorize(
        browser,
        base_url,
        {**auth.params(), "approve": "Allow", "csrf_token": csrf_token(page.text)},
    )
    assert is_consent_page(again)
    assert _rows(app, Consent) == 0
    assert _rows(app, AuthorizationCode) == 0


def test_consent_answers_only_the_request_it_was_shown_for(
    app, base_url, rp, person, browser
):
    first = AuthRequest.make(rp)
    walk = walk_authorize(browser, base_url, first.params(), person, approve=None)
    page = walk.shown["consent"]
    other = AuthRequest.make(rp, scope="openid email profile offline_access")
    target = base_url + "/authorize/consent"
    response = browser.post(
        target,
        params=other.params(),
        data={"csrf_token": csrf_token(page.text), "approve": "Allow"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert _rows(app, Consent) == 0
    assert _rows(app, AuthorizationCode) == 0
    # The page shown still answers its own request (once).
    fresh = browser.get(page.url, allow_redirects=False, timeout=TIMEOUT)
    answer = browser.post(
        form_action(fresh),
        data={"csrf_token": csrf_token(fresh.text), "approve": "Allow"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert Walk(answer).query["state"] == first.state
    replay = browser.post(
        form_action(fresh),
        data={"csrf_token": csrf_token(fresh.text), "approve": "Allow"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert replay.status_code == 400


def test_consent_pages_open_in_two_tabs_both_answer(base_url, rp, person, browser):
    first, second = AuthRequest.make(rp), AuthRequest.make(rp)
    walk = walk_authorize(browser, base_url, first.params(), person, approve=None)
    page_one = walk.shown["consent"]
    page_two = walk_authorize(browser, base_url, second.params(), approve=None).shown[
        "consent"
    ]
    for auth, page in ((first, page_one), (second, page_two)):
        answer = browser.post(
            form_action(page),
            data={"csrf_token": csrf_token(page.text), "approve": "Allow"},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert Walk(answer).query["state"] == auth.state


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/token", {"grant_type": "client_credentials"}),
        ("/revoke", {"token": "x"}),
        ("/introspect", {"token": "x"}),
        ("/device_authorization", {"client_id": "nobody"}),
        ("/userinfo", {"access_token": "x"}),
        ("/logout/end", {"state": "s"}),
    ],
)
def test_no_protocol_post_endpoint_asks_for_our_csrf_token(base_url, path, data):
    response = requests.post(
        base_url + path, data=data, allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code < 500
    assert "CSRF" not in response.text, (path, response.text[:300])


# -- unsupported parameters ---------------------------------------------------------
def _request_object(rp) -> str:
    """An unsigned request object (OIDC Core §6.1) holding state and nonce."""
    head = b64url(json.dumps({"alg": "none"}).encode())
    body = b64url(
        json.dumps(
            {"client_id": rp.client_id, "state": "inner-state", "nonce": "inner"}
        ).encode()
    )
    return f"{head}.{body}."


@pytest.mark.parametrize("signed_in", [False, True])
def test_request_object_is_refused_not_dropped(
    app, base_url, issuer, rp, person, browser, signed_in
):
    if signed_in:
        walk_authorize(browser, base_url, AuthRequest.make(rp).params(), person)
    auth = AuthRequest.make(rp, request=_request_object(rp))
    auth.state, auth.nonce = None, None  # only inside the request object
    walk = walk_authorize(browser, base_url, auth.params())
    assert walk.pages == []
    query = assert_error_redirect(
        walk, rp.redirect_uri, "request_not_supported", None, issuer
    )
    assert "state" not in query
    assert _rows(app, AuthorizationCode) == (0 if not signed_in else 1)


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            {"request_uri": "https://rp.example/request.jwt"},
            "request_uri_not_supported",
        ),
        (
            {"request_uri": "urn:ietf:params:oauth:request_uri:x"},
            "request_uri_not_supported",
        ),
        (
            {"registration": '{"logo_uri": "https://rp.example/a.png"}'},
            "registration_not_supported",
        ),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"response_mode": "query.jwt"}, "invalid_request"),
        ({"prompt": "select_account"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
    ],
)
def test_unsupported_parameters_are_refused_with_their_own_error(
    base_url, issuer, rp, person, browser, extra, error
):
    sign_in(browser, base_url, person)
    auth = AuthRequest.make(rp, **extra)
    walk = walk_authorize(browser, base_url, auth.params())
    assert_error_redirect(walk, rp.redirect_uri, error, auth.state, issuer)


def test_supported_values_and_empty_values_are_accepted(base_url, rp, person, browser):
    # RFC 6749 §3.1: a parameter sent without a value is as if omitted.
    auth = AuthRequest.make(
        rp, response_mode="query", request="", request_uri="", prompt="", max_age=""
    )
    walk = walk_authorize(browser, base_url, auth.params(), person)
    assert "code" in walk.query
    # OIDC Core §5.5.1: requested claims that are not returned are no
    # error, so the (unsupported) claims parameter is ignored.
    claims = json.dumps({"id_token": {"email": {"essential": True}}})
    walk = walk_authorize(
        browser, base_url, AuthRequest.make(rp, claims=claims).params()
    )
    assert "code" in walk.query


# -- max_age ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "max_age", ["-1", "abc", "1.5", " 5", "+5", "1e3", "5 ", "0x10", "١٢", "9" * 11]
)
@pytest.mark.parametrize("signed_in", [False, True])
def test_max_age_must_be_a_non_negative_integer(
    base_url, issuer, rp, person, browser, max_age, signed_in
):
    if signed_in:
        sign_in(browser, base_url, person)
    auth = AuthRequest.make(rp, max_age=max_age)
    walk = walk_authorize(browser, base_url, auth.params())
    assert walk.pages == []  # no sign-in loop, no sign-in at all
    assert_error_redirect(walk, rp.redirect_uri, "invalid_request", auth.state, issuer)


@pytest.mark.parametrize("extra", [{"max_age": "0"}, {"prompt": "login"}])
def test_one_fresh_sign_in_satisfies_the_request_once(
    base_url, issuer, jwks, factories, person, browser, extra
):
    client = factories.client(first_party=True)
    sign_in(browser, base_url, person)
    auth = AuthRequest.make(client, **extra)
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    # Exactly one sign-in, then the very same request (max_age and all) ends
    # with a code.
    assert walk.pages == ["login"]
    back_to = form_inputs(walk.shown["login"].text)["next"]
    assert urlencode(extra) in back_to
    assert walk.query["state"] == auth.state
    tokens = redeem_code(base_url, auth, walk.query["code"])
    assert tokens.status_code == 200, tokens.text
    verify_id_token(tokens.json()["id_token"], jwks, issuer, client.client_id)
    # The same request again asks again: that sign-in was used up.
    again = walk_authorize(browser, base_url, auth.params())
    assert again.pages == ["login"]
    assert is_login_page(again.shown["login"])


def test_small_max_age_is_met_by_the_sign_in_it_asked_for(
    base_url, factories, person, browser
):
    client = factories.client(first_party=True)
    auth = AuthRequest.make(client, max_age="1")
    walk = walk_authorize(browser, base_url, auth.params(), account=person)
    assert walk.pages == ["login"]
    assert "code" in walk.query
