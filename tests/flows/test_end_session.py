"""OIDC RP-Initiated Logout 1.0: the end-session endpoint ends the browser's
session when the relying party proves (with an ID token) it is this session,
asks the person otherwise, and redirects only to a registered
post_logout_redirect_uri, with ``state``."""

import base64
import json
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.logout.backchannel import HANDLERS
from app.models import BrowserSession
from app.models.base import utcnow
from app.outbox.services import run_once
from tests.flows.backchannel_rp import RecordingRP, verify_logout_token
from tests.flows.helpers import (
    TIMEOUT,
    assert_error_page,
    form_inputs,
    new_browser,
    sign_in,
    tokens_for,
)
from tests.support.oauth import verify_id_token

SIGNED_OUT = "http://127.0.0.1:8765/signed-out"


@pytest.fixture
def end_session_url(base_url):
    meta = requests.get(base_url + "/.well-known/openid-configuration", timeout=5)
    return meta.json()["end_session_endpoint"]


@pytest.fixture
def app_client(factories):
    """A relying party with a registered post-logout redirect URI."""
    return factories.client(post_logout_redirect_uris=[SIGNED_OUT])


@pytest.fixture
def signed_in(browser, base_url, person, app_client, jwks, issuer):
    """``browser`` signed in through app_client: (id_token, its claims)."""
    id_token = tokens_for(browser, base_url, person, app_client)["id_token"]
    return id_token, verify_id_token(id_token, jwks, issuer, app_client.client_id)


def _is_signed_in(browser, base_url) -> bool:
    response = browser.get(
        base_url + "/account", allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def _session_ended(app, sid) -> bool:
    with app.app_context():
        ended = db.session.execute(
            select(BrowserSession.ended_at).where(BrowserSession.sid == sid)
        ).scalar_one()
        db.session.remove()
    return ended is not None


def _redirect_query(response, expected_base) -> dict:
    assert response.status_code == 302, (response.status_code, response.text[:300])
    location = urlparse(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == expected_base
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def _sign(app, claims, alg="ES256", typ="JWT") -> str:
    with app.app_context():
        token = app.extensions["latchkey"].keys.sign(claims, alg, typ=typ)
        db.session.remove()
    return token


def _b64(data: dict) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_discovery_names_the_end_session_endpoint(end_session_url, issuer):
    assert end_session_url == issuer + "/logout/end"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_hint_for_this_session_signs_out_and_redirects_with_state(
    app, browser, base_url, end_session_url, signed_in, method
):
    id_token, claims = signed_in
    params = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": SIGNED_OUT,
        "state": "st-8Jq2",
    }
    # A POST comes from the relying party's page, so it has no CSRF token:
    # the ID token is what proves the request (§2).
    kwargs = {"params": params} if method == "GET" else {"data": params}
    response = browser.request(
        method, end_session_url, allow_redirects=False, timeout=TIMEOUT, **kwargs
    )

    assert _redirect_query(response, SIGNED_OUT) == {"state": "st-8Jq2"}
    assert response.headers["Cache-Control"] == "no-store"
    assert _session_ended(app, claims["sid"])
    assert not browser.cookies.get("lk_session")
    assert not _is_signed_in(browser, base_url)


def test_a_cross_site_post_is_turned_into_a_get_that_carries_the_cookie(
    app, browser, base_url, end_session_url, signed_in
):
    id_token, claims = signed_in
    params = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": SIGNED_OUT,
        "state": "x-site",
    }
    # A browser leaves SameSite=Lax cookies off a cross-site POST ...
    response = requests.post(
        end_session_url, data=params, allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/logout/end?")
    assert parse_qs(urlparse(location).query) == {k: [v] for k, v in params.items()}
    assert not _session_ended(app, claims["sid"])
    # ... and sends them on the top-level GET it is redirected to.
    response = browser.get(base_url + location, allow_redirects=False, timeout=TIMEOUT)
    assert _redirect_query(response, SIGNED_OUT) == {"state": "x-site"}
    assert _session_ended(app, claims["sid"])


def test_without_redirect_uri_shows_the_signed_out_page(
    app, browser, end_session_url, signed_in
):
    id_token, claims = signed_in
    response = browser.get(
        end_session_url, params={"id_token_hint": id_token}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert 'id="signed-out"' in response.text
    assert _session_ended(app, claims["sid"])


def test_signing_out_tells_back_channel_relying_parties(
    app, factories, browser, base_url, person, end_session_url, jwks, issuer
):
    rp = RecordingRP()
    try:
        client = factories.client(
            backchannel_logout_uri=rp.url, post_logout_redirect_uris=[SIGNED_OUT]
        )
        id_token = tokens_for(browser, base_url, person, client)["id_token"]
        sid = verify_id_token(id_token, jwks, issuer, client.client_id)["sid"]
        browser.get(
            end_session_url,
            params={"id_token_hint": id_token, "post_logout_redirect_uri": SIGNED_OUT},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        with app.app_context():
            run_once(handlers=HANDLERS)
            db.session.remove()
        (token,) = rp.tokens
        claims = verify_logout_token(token, jwks, issuer, client.client_id)
        assert claims["sid"] == sid
        assert claims["sub"] == person.id
    finally:
        rp.stop()


def test_an_expired_hint_is_still_a_hint(
    app, browser, base_url, end_session_url, signed_in
):
    _, claims = signed_in
    now = int(utcnow().timestamp())
    # §2: the OP SHOULD accept an ID token whose exp has passed.
    expired = _sign(app, {**claims, "iat": now - 7200, "exp": now - 3600})
    response = browser.get(
        end_session_url,
        params={"id_token_hint": expired, "post_logout_redirect_uri": SIGNED_OUT},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert _redirect_query(response, SIGNED_OUT) == {}
    assert not _is_signed_in(browser, base_url)


def test_an_unregistered_redirect_uri_is_refused(
    browser, base_url, end_session_url, signed_in
):
    id_token, _ = signed_in
    for uri in (
        "http://127.0.0.1:8765/elsewhere",
        SIGNED_OUT + "/",
        SIGNED_OUT + "?x=1",
    ):
        response = browser.get(
            end_session_url,
            params={"id_token_hint": id_token, "post_logout_redirect_uri": uri},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        # §3: no exact match, no redirection; and nothing else is done.
        assert_error_page(response, "invalid_request")
    assert _is_signed_in(browser, base_url)


def test_a_redirect_uri_needs_a_known_client(
    browser, base_url, end_session_url, signed_in
):
    for params in (
        {"post_logout_redirect_uri": SIGNED_OUT},
        {"post_logout_redirect_uri": SIGNED_OUT, "client_id": "no-such-client"},
    ):
        response = browser.get(
            end_session_url, params=params, allow_redirects=False, timeout=TIMEOUT
        )
        assert_error_page(response)
    assert _is_signed_in(browser, base_url)


def test_a_tampered_hint_is_refused(app, browser, base_url, end_session_url, signed_in):
    id_token, claims = signed_in
    header, _, signature = id_token.split(".")
    tampered = ".".join([header, _b64({**claims, "sub": "someone-else"}), signature])
    foreign = _sign(app, {**claims, "iss": "https://idp.example.com"})
    bad_signature = id_token[:-6] + (
        "AAAAAA" if id_token[-6:] != "AAAAAA" else "BBBBBB"
    )
    logout_token = _sign(app, claims, typ="logout+jwt")  # ours, but not an ID token
    for hint in (tampered, bad_signature, foreign, logout_token, "not-a-jwt"):
        response = browser.get(
            end_session_url,
            params={"id_token_hint": hint, "post_logout_redirect_uri": SIGNED_OUT},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert_error_page(response, "invalid_request")
    assert _is_signed_in(browser, base_url)


def test_an_access_token_is_not_an_id_token_hint(
    browser, base_url, person, app_client, end_session_url
):
    tokens = tokens_for(browser, base_url, person, app_client)
    response = browser.get(
        end_session_url,
        params={"id_token_hint": tokens["access_token"]},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert_error_page(response, "invalid_request")
    assert _is_signed_in(browser, base_url)


def test_client_id_must_match_the_hint(
    factories, browser, base_url, end_session_url, signed_in
):
    id_token, _ = signed_in
    other = factories.client(post_logout_redirect_uris=[SIGNED_OUT])
    response = browser.get(
        end_session_url,
        params={
            "id_token_hint": id_token,
            "client_id": other.client_id,
            "post_logout_redirect_uri": SIGNED_OUT,
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert_error_page(response, "invalid_request")
    assert _is_signed_in(browser, base_url)


def test_a_hint_from_another_session_asks_first(
    app, browser, base_url, person, end_session_url, signed_in
):
    id_token, claims = signed_in
    with new_browser() as other:
        sign_in(other, base_url, person)
        page = other.get(
            end_session_url,
            params={
                "id_token_hint": id_token,
                "post_logout_redirect_uri": SIGNED_OUT,
                "state": "s1",
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        # §2: the ID token is not for this session, so the person is asked.
        assert page.status_code == 200
        assert 'id="confirm"' in page.text
        assert _is_signed_in(other, base_url)

        fields = form_inputs(page.text)
        response = other.post(
            base_url + "/logout/end/confirm",
            data={**fields, "confirm": "Sign out"},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert _redirect_query(response, SIGNED_OUT) == {"state": "s1"}
        assert not _is_signed_in(other, base_url)
    # The session the hint named, in the first browser, was not this one.
    assert _is_signed_in(browser, base_url)
    assert not _session_ended(app, claims["sid"])


def test_without_a_hint_the_person_can_stay_signed_in(
    browser, base_url, app_client, end_session_url, signed_in
):
    page = browser.get(
        end_session_url,
        params={
            "client_id": app_client.client_id,
            "post_logout_redirect_uri": SIGNED_OUT,
            "state": "s2",
        },
        timeout=TIMEOUT,
    )
    assert 'id="cancel"' in page.text
    response = browser.post(
        base_url + "/logout/end/confirm",
        data={**form_inputs(page.text), "cancel": "Stay signed in"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert _redirect_query(response, SIGNED_OUT) == {"state": "s2"}
    assert _is_signed_in(browser, base_url)


def test_the_confirm_form_needs_its_csrf_token(
    browser, base_url, app_client, end_session_url, signed_in
):
    page = browser.get(
        end_session_url, params={"client_id": app_client.client_id}, timeout=TIMEOUT
    )
    fields = form_inputs(page.text)
    assert fields["csrf_token"]
    del fields["csrf_token"]
    response = browser.post(
        base_url + "/logout/end/confirm",
        data={**fields, "confirm": "Sign out"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert _is_signed_in(browser, base_url)


def test_the_confirm_form_checks_its_redirect_uri_again(
    browser, base_url, app_client, end_session_url, signed_in
):
    page = browser.get(
        end_session_url, params={"client_id": app_client.client_id}, timeout=TIMEOUT
    )
    fields = {
        **form_inputs(page.text),
        "post_logout_redirect_uri": "https://attacker.example/",
    }
    response = browser.post(
        base_url + "/logout/end/confirm",
        data={**fields, "confirm": "Sign out"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert_error_page(response, "invalid_request")
    assert _is_signed_in(browser, base_url)


def test_when_nobody_is_signed_in_it_just_redirects(end_session_url, signed_in):
    id_token, _ = signed_in
    with new_browser() as stranger:
        response = stranger.get(
            end_session_url,
            params={
                "id_token_hint": id_token,
                "post_logout_redirect_uri": SIGNED_OUT,
                "state": "s3",
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    assert _redirect_query(response, SIGNED_OUT) == {"state": "s3"}
