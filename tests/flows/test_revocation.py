"""Token revocation (RFC 7009) against a live server: access and refresh
tokens, hints that are honoured but not trusted, a refresh token taking its
grant with it, clients revoking only their own tokens, and the errors."""

import threading

import pytest
import requests

from tests.flows.device_helpers import (
    INACTIVE,
    assert_inactive,
    assert_refresh_rejected,
    device_tokens,
    events,
    introspection,
    revoke,
    unverified_claims,
)
from tests.flows.helpers import (
    TIMEOUT,
    assert_json_error,
    refresh,
    sign_in,
    token_request,
    tokens_for,
    userinfo,
)

GRANT_REVOKED = "oauth:grant:revoked"
PARALLEL = 10


@pytest.fixture
def signed_in(base_url, browser, person):
    sign_in(browser, base_url, person)
    return browser


@pytest.fixture
def grant(base_url, signed_in, person, rp):
    """Start a fresh grant; returns its token response."""

    def make(client=rp):
        return tokens_for(
            signed_in, base_url, person, client, scope="openid profile offline_access"
        )

    return make


def assert_revoked_ok(response: requests.Response) -> None:
    # RFC 7009 §2.2: 200 whether or not there was anything to revoke.
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"


# -- what gets revoked -----------------------------------------------------------
def test_revoking_an_access_token(base_url, rs, rp, grant):
    tokens = grant()
    sibling = refresh(base_url, rp, tokens["refresh_token"]).json()
    assert_revoked_ok(revoke(base_url, rp, tokens["access_token"], "access_token"))
    assert_inactive(base_url, rs, tokens["access_token"])
    assert userinfo(base_url, tokens["access_token"]).status_code == 401
    # One token is the smallest grain: the grant and its other tokens go on.
    assert introspection(base_url, rs, sibling["access_token"])["active"] is True
    assert refresh(base_url, rp, sibling["refresh_token"]).status_code == 200


def test_revoking_a_client_credentials_token(base_url, rs):
    issued = token_request(
        base_url, {"grant_type": "client_credentials"}, client=rs
    ).json()
    assert introspection(base_url, rs, issued["access_token"])["active"] is True
    assert_revoked_ok(revoke(base_url, rs, issued["access_token"]))
    assert_inactive(base_url, rs, issued["access_token"])
    fresh = token_request(base_url, {"grant_type": "client_credentials"}, client=rs)
    assert introspection(base_url, rs, fresh.json()["access_token"])["active"] is True


def test_revoking_a_refresh_token_ends_its_grant(app, base_url, rs, person, rp, grant):
    tokens = grant()
    other = grant()  # another grant of the same client is not touched
    assert_revoked_ok(revoke(base_url, rp, tokens["refresh_token"], "refresh_token"))
    assert_refresh_rejected(base_url, rp, tokens["refresh_token"])
    # RFC 7009 §2.1: the access tokens of that grant die with it.
    assert_inactive(base_url, rs, tokens["access_token"])
    assert userinfo(base_url, tokens["access_token"]).status_code == 401
    assert introspection(base_url, rs, other["access_token"])["active"] is True
    assert refresh(base_url, rp, other["refresh_token"]).status_code == 200
    (event,) = events(app, person.id, GRANT_REVOKED)
    assert event.details["grant_id"] == unverified_claims(tokens["access_token"])["gid"]


def test_revoking_an_older_refresh_token_of_the_family_ends_the_grant(
    base_url, rs, rp, grant
):
    tokens = grant()
    newer = refresh(base_url, rp, tokens["refresh_token"]).json()
    assert_revoked_ok(revoke(base_url, rp, tokens["refresh_token"]))
    assert_refresh_rejected(base_url, rp, newer["refresh_token"])
    assert_inactive(base_url, rs, newer["access_token"])


def test_a_wrong_hint_still_revokes(base_url, rs, rp, grant):
    tokens = grant()
    assert_revoked_ok(revoke(base_url, rp, tokens["access_token"], "refresh_token"))
    assert_inactive(base_url, rs, tokens["access_token"])
    assert refresh(base_url, rp, tokens["refresh_token"]).status_code == 200

    tokens = grant()
    assert_revoked_ok(revoke(base_url, rp, tokens["refresh_token"], "access_token"))
    assert_refresh_rejected(base_url, rp, tokens["refresh_token"])
    assert_inactive(base_url, rs, tokens["access_token"])


def test_an_unknown_hint_is_ignored(base_url, rs, rp, grant):
    tokens = grant()
    assert_revoked_ok(revoke(base_url, rp, tokens["refresh_token"], "mac_token"))
    assert_refresh_rejected(base_url, rp, tokens["refresh_token"])


# -- whose tokens ---------------------------------------------------------------------
def test_a_client_may_revoke_only_its_own_tokens(base_url, factories, rs, rp, grant):
    tokens = grant()
    other = factories.client(name="Other app")
    for token in (tokens["access_token"], tokens["refresh_token"]):
        for hint in (None, "access_token", "refresh_token"):
            # RFC 7009 §2.1: the other client is not told, and nothing happens.
            assert_revoked_ok(revoke(base_url, other, token, hint))
    assert introspection(base_url, rs, tokens["access_token"])["active"] is True
    assert userinfo(base_url, tokens["access_token"]).status_code == 200
    assert refresh(base_url, rp, tokens["refresh_token"]).status_code == 200


def test_a_resource_server_cannot_revoke_other_clients_tokens(base_url, rs, grant):
    tokens = grant()
    assert_revoked_ok(revoke(base_url, rs, tokens["access_token"]))
    assert introspection(base_url, rs, tokens["access_token"])["active"] is True


def test_public_client_revokes_with_its_client_id(base_url, rs, tv, signed_in):
    tokens = device_tokens(base_url, signed_in, tv)
    response = requests.post(
        base_url + "/revoke",
        data={"token": tokens["refresh_token"], "client_id": tv.client_id},
        timeout=TIMEOUT,
    )
    assert_revoked_ok(response)
    assert_refresh_rejected(base_url, tv, tokens["refresh_token"])
    assert_inactive(base_url, rs, tokens["access_token"])


# -- nothing to revoke ------------------------------------------------------------
def test_unknown_and_already_revoked_tokens_are_fine(base_url, rp, grant):
    tokens = grant()
    for token in ("no-such-token", "a.b.c", "x" * 5000):
        assert_revoked_ok(revoke(base_url, rp, token))
    for _ in range(2):
        assert_revoked_ok(revoke(base_url, rp, tokens["refresh_token"]))
        assert_revoked_ok(revoke(base_url, rp, tokens["access_token"]))
    assert introspection(base_url, rp, tokens["access_token"]) == INACTIVE


# -- errors -----------------------------------------------------------------
def test_revocation_needs_client_authentication(base_url, rs, rp, grant):
    tokens = grant()
    token = tokens["refresh_token"]
    no_auth = requests.post(
        base_url + "/revoke", data={"token": token}, timeout=TIMEOUT
    )
    assert_json_error(no_auth, 401, "invalid_client")
    wrong_basic = revoke(base_url, rp, token, auth=(rp.client_id, "wrong"))
    assert_json_error(wrong_basic, 401, "invalid_client")
    wrong_post = requests.post(
        base_url + "/revoke",
        data={"token": token, "client_id": rp.client_id, "client_secret": "wrong"},
        timeout=TIMEOUT,
    )
    assert_json_error(wrong_post, 401, "invalid_client")
    # A confidential client cannot fall back to sending its client_id alone.
    id_only = requests.post(
        base_url + "/revoke",
        data={"token": token, "client_id": rp.client_id},
        timeout=TIMEOUT,
    )
    assert_json_error(id_only, 401, "invalid_client")
    # None of these revoked anything.
    assert introspection(base_url, rs, tokens["access_token"])["active"] is True
    assert refresh(base_url, rp, token).status_code == 200


def test_missing_token_is_invalid_request(base_url, rp):
    response = requests.post(
        base_url + "/revoke", auth=(rp.client_id, rp.secret), timeout=TIMEOUT
    )
    assert_json_error(response, 400, "invalid_request")


def test_parallel_revocations_of_one_token_all_succeed(base_url, rs, rp, grant):
    tokens = grant()
    barrier = threading.Barrier(PARALLEL)
    statuses: list = []

    def worker(token):
        barrier.wait()
        statuses.append(revoke(base_url, rp, token).status_code)

    for token in (tokens["access_token"], tokens["refresh_token"]):
        threads = [
            threading.Thread(target=worker, args=(token,)) for _ in range(PARALLEL)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert statuses == [200] * (2 * PARALLEL)
    assert_inactive(base_url, rs, tokens["access_token"])
    assert_refresh_rejected(base_url, rp, tokens["refresh_token"])
