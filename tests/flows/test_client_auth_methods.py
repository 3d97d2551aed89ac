"""One client authentication method per request (RFC 6749 §2.3), on every
endpoint that authenticates clients: /token (each grant), /revoke,
/introspect and /device_authorization. Two methods at once, or a body
naming another client than HTTP Basic, is 400 invalid_request; a wrong
credential is 401 invalid_client and never falls through to another
method that happens to be right."""

import secrets

import pytest
import requests

from tests.flows.device_helpers import DEVICE_GRANT
from tests.flows.helpers import (
    TIMEOUT,
    AuthRequest,
    assert_json_error,
    get_code,
)


@pytest.fixture
def confidential(factories):
    """A confidential client allowed every grant (so each endpoint's own
    checks never come before client authentication)."""
    return factories.client(
        grant_types=[
            "authorization_code",
            "refresh_token",
            "client_credentials",
            DEVICE_GRANT,
        ],
        may_introspect=True,
    )


def _endpoints():
    """(path, form fields) of every request that authenticates a client; the
    grant's own values are made up: authentication is checked first."""
    made_up = secrets.token_urlsafe(32)
    return [
        ("/token", {"grant_type": "authorization_code", "code": made_up}),
        ("/token", {"grant_type": "refresh_token", "refresh_token": made_up}),
        ("/token", {"grant_type": "client_credentials"}),
        ("/token", {"grant_type": DEVICE_GRANT, "device_code": made_up}),
        ("/revoke", {"token": made_up}),
        ("/introspect", {"token": made_up}),
        ("/device_authorization", {"scope": "openid"}),
    ]


ENDPOINT_IDS = [
    "token-code",
    "token-refresh",
    "token-client-credentials",
    "token-device",
    "revoke",
    "introspect",
    "device-authorization",
]


def _post(base_url, path, data, auth=None, params=None):
    return requests.post(
        base_url + path, data=data, auth=auth, params=params, timeout=TIMEOUT
    )


# -- the example: a wrong Basic secret, the right one in the body ----------------
def test_code_exchange_with_wrong_basic_and_right_post_is_invalid_request(
    base_url, rp, person, browser
):
    auth = AuthRequest.make(rp)
    code = get_code(browser, base_url, auth, person)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": rp.redirect_uri,
        "code_verifier": auth.verifier,
        "client_id": rp.client_id,
        "client_secret": rp.secret,
    }
    response = _post(base_url, "/token", data, auth=(rp.client_id, "WRONG"))
    body = assert_json_error(response, 400, "invalid_request")
    assert "access_token" not in body


# -- the kind, on every endpoint -------------------------------------------------
@pytest.mark.parametrize("index", range(7), ids=ENDPOINT_IDS)
def test_two_methods_at_once_are_invalid_request(base_url, confidential, index):
    path, fields = _endpoints()[index]
    me = confidential
    both = {**fields, "client_id": me.client_id, "client_secret": me.secret}
    for basic in ((me.client_id, "WRONG"), (me.client_id, me.secret)):
        response = _post(base_url, path, both, auth=basic)
        assert_json_error(response, 400, "invalid_request")


@pytest.mark.parametrize("index", range(7), ids=ENDPOINT_IDS)
def test_body_naming_another_client_than_basic_is_invalid_request(
    base_url, factories, confidential, index
):
    path, fields = _endpoints()[index]
    other = factories.client(name="Other app")
    data = {**fields, "client_id": other.client_id}
    auth = (confidential.client_id, confidential.secret)
    assert_json_error(_post(base_url, path, data, auth=auth), 400, "invalid_request")


@pytest.mark.parametrize("index", range(7), ids=ENDPOINT_IDS)
def test_wrong_basic_never_falls_through(base_url, confidential, index):
    path, fields = _endpoints()[index]
    me = confidential
    # Only the client_id in the body besides: the "none" method must not
    # take over from a failed Basic authentication.
    data = {**fields, "client_id": me.client_id}
    response = _post(base_url, path, data, auth=(me.client_id, "WRONG"))
    assert_json_error(response, 401, "invalid_client")


@pytest.mark.parametrize("index", range(7), ids=ENDPOINT_IDS)
def test_secret_in_the_uri_or_repeated_is_invalid_request(
    base_url, confidential, index
):
    path, fields = _endpoints()[index]
    me = confidential
    # RFC 6749 §2.3.1: never in the request URI.
    in_uri = _post(
        base_url,
        path,
        {**fields, "client_id": me.client_id},
        params={"client_secret": me.secret},
    )
    assert_json_error(in_uri, 400, "invalid_request")
    # RFC 6749 §3.2: no parameter more than once.
    repeated = _post(
        base_url,
        path,
        [
            *fields.items(),
            ("client_id", me.client_id),
            ("client_secret", me.secret),
            ("client_secret", "WRONG"),
        ],
    )
    assert_json_error(repeated, 400, "invalid_request")


def test_public_client_cannot_fall_through_from_a_wrong_basic(base_url, factories):
    tv = factories.client(device=True, grant_types=[DEVICE_GRANT], name="TV")
    response = _post(
        base_url,
        "/device_authorization",
        {"client_id": tv.client_id, "scope": "openid"},
        auth=(tv.client_id, "anything"),
    )
    assert_json_error(response, 401, "invalid_client")


# -- one method, used alone, still works ------------------------------------------
@pytest.mark.parametrize("via", ["basic", "basic+same-client_id", "post"])
def test_one_method_alone_works(base_url, confidential, via):
    me = confidential
    data = {"grant_type": "client_credentials"}
    auth = None
    if via.startswith("basic"):
        auth = (me.client_id, me.secret)
        if via.endswith("client_id"):
            data["client_id"] = me.client_id
    else:
        data.update(client_id=me.client_id, client_secret=me.secret)
    response = _post(base_url, "/token", data, auth=auth)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]
