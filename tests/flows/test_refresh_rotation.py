"""Refresh-token rotation (RFC 6749 §6, RFC 9700 §4.14.2) against live
servers: a new refresh token on every use, the grace retry for a lost
response, reuse detection that ends the whole grant, races between parallel
refreshes, idle and absolute lifetimes, and scope on refresh."""

import threading
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

from app.extensions import db
from app.models import Grant
from app.security.tokens import hash_token
from tests.flows.device_helpers import (
    SHORT_LIVED,
    STRICT,
    assert_inactive,
    assert_refresh_rejected,
    events,
    grant_of_refresh_token,
    grant_state,
    introspection,
    is_active,
    resource_server,
    shared_server,
    unverified_claims,
)
from tests.flows.helpers import (
    TIMEOUT,
    assert_json_error,
    client_auth,
    refresh,
    sign_in,
    tokens_for,
    verify_jwt,
)

REUSED = "oauth:refresh:reused"
PARALLEL = 20


@pytest.fixture(scope="module")
def no_grace(request, app, base_env, log_dir):
    """A server where any second use of a refresh token is reuse (grace 0)."""
    return shared_server(request, base_env, log_dir, STRICT).url


@pytest.fixture(scope="module")
def short_lived(request, app, base_env, log_dir):
    """A server whose refresh tokens die after 2 s idle or 3 s in all."""
    return shared_server(request, base_env, log_dir, SHORT_LIVED).url


@pytest.fixture
def rs(factories):
    return resource_server(factories)


@pytest.fixture
def grant(base_url, browser, person, rp):
    """Start a fresh grant of ``rp`` for ``person``; returns its token response."""
    sign_in(browser, base_url, person)

    def make(client=rp, **options):
        options.setdefault("scope", "openid profile email offline_access")
        return tokens_for(browser, base_url, person, client, **options)

    return make


def rotated(base_url, client, refresh_token) -> dict:
    response = refresh(base_url, client, refresh_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] != refresh_token
    return body


def _age_grant(app, refresh_token: str, seconds: int) -> None:
    """Move the grant's last rotation ``seconds`` into the past."""
    grant_id = grant_of_refresh_token(app, refresh_token)
    with app.app_context():
        row = db.session.get(Grant, grant_id)
        db.session.execute(
            update(Grant)
            .where(Grant.id == grant_id)
            .values(last_refresh_at=row.last_refresh_at - timedelta(seconds=seconds))
        )
        db.session.commit()
        db.session.remove()


# -- rotation ---------------------------------------------------------------------
def test_refresh_rotates_the_refresh_token(
    app, base_url, issuer, jwks, person, rp, grant
):
    first = grant()
    second = rotated(base_url, rp, first["refresh_token"])
    assert second["token_type"] == "Bearer"
    assert second["expires_in"] > 0
    claims = verify_jwt(second["access_token"], jwks, issuer, rp.client_id)
    assert claims["sub"] == person.id
    before = unverified_claims(first["access_token"])
    # Same grant, same device, a new access token.
    assert claims["gid"] == before["gid"]
    assert claims["did"] == before["did"]
    assert claims["jti"] != before["jti"]
    third = rotated(base_url, rp, second["refresh_token"])
    assert third["refresh_token"] != first["refresh_token"]
    # Only the newest one is live (the database holds its hash, not the token).
    state = grant_state(app, claims["gid"])
    assert state.live_hashes == [hash_token(third["refresh_token"])]
    assert events(app, person.id, REUSED) == []


def test_without_grace_the_old_token_fails(no_grace, rp, grant):
    first = grant()
    rotated(no_grace, rp, first["refresh_token"])
    assert_refresh_rejected(no_grace, rp, first["refresh_token"])


def test_reuse_without_grace_revokes_the_grant(app, no_grace, rs, person, rp, grant):
    first = grant()
    second = rotated(no_grace, rp, first["refresh_token"])
    newest = rotated(no_grace, rp, second["refresh_token"])
    assert is_active(no_grace, rs, newest["access_token"])

    assert_refresh_rejected(no_grace, rp, first["refresh_token"])  # the reuse
    # RFC 9700 §4.14.2: the newest token of the family dies with it.
    assert_refresh_rejected(no_grace, rp, newest["refresh_token"])
    assert_inactive(no_grace, rs, newest["refresh_token"])
    assert_inactive(no_grace, rs, newest["access_token"])
    (event,) = events(app, person.id, REUSED)
    assert event.details["client_id"] == rp.client_id
    assert event.details["grant_id"] == unverified_claims(first["access_token"])["gid"]
    assert grant_state(app, event.details["grant_id"]).revoked


def test_reuse_beyond_the_grace_period_revokes_the_grant(
    app, base_url, rs, person, rp, grant
):
    first = grant()
    second = rotated(base_url, rp, first["refresh_token"])
    _age_grant(app, first["refresh_token"], seconds=60)  # grace is 10 s
    assert_refresh_rejected(base_url, rp, first["refresh_token"])
    assert_refresh_rejected(base_url, rp, second["refresh_token"])
    assert_inactive(base_url, rs, second["access_token"])
    assert len(events(app, person.id, REUSED)) == 1


def test_grace_covers_only_the_token_just_rotated(app, base_url, person, rp, grant):
    first = grant()
    second = rotated(base_url, rp, first["refresh_token"])
    third = rotated(base_url, rp, second["refresh_token"])
    # Within the grace period, but two rotations old: that is reuse.
    assert_refresh_rejected(base_url, rp, first["refresh_token"])
    assert_refresh_rejected(base_url, rp, third["refresh_token"])
    assert len(events(app, person.id, REUSED)) == 1


# -- the grace retry -------------------------------------------------------------
def test_grace_retry_replaces_the_lost_successor(app, base_url, rs, person, rp, grant):
    first = grant()
    lost = rotated(base_url, rp, first["refresh_token"])  # the client never saw it
    retry = rotated(base_url, rp, first["refresh_token"])
    assert retry["refresh_token"] != lost["refresh_token"]
    # The successor nobody received is dead; the new one is the live token.
    # (Asked through introspection, which never counts as a use.)
    assert_inactive(base_url, rs, lost["refresh_token"])
    assert_inactive(base_url, rs, first["refresh_token"])
    assert introspection(base_url, rs, retry["refresh_token"])["active"] is True
    gid = unverified_claims(first["access_token"])["gid"]
    assert grant_state(app, gid).live_hashes == [hash_token(retry["refresh_token"])]
    # The grant carries on normally.
    rotated(base_url, rp, retry["refresh_token"])
    assert events(app, person.id, REUSED) == []


def test_presenting_the_dead_successor_is_reuse(app, base_url, rs, person, rp, grant):
    first = grant()
    lost = rotated(base_url, rp, first["refresh_token"])
    retry = rotated(base_url, rp, first["refresh_token"])
    # Whoever holds the replaced successor is not the client that retried.
    assert_refresh_rejected(base_url, rp, lost["refresh_token"])
    assert_refresh_rejected(base_url, rp, retry["refresh_token"])
    assert_inactive(base_url, rs, retry["access_token"])
    (event,) = events(app, person.id, REUSED)
    assert grant_state(app, event.details["grant_id"]).revoked


# -- races ---------------------------------------------------------------------
def _refresh_in_parallel(base_url, client, refresh_token, n=PARALLEL):
    """``n`` threads present the same token at once, each with its own request."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    auth, extra = client_auth(client)

    def worker(i):
        barrier.wait()
        results[i] = requests.post(
            base_url + "/token",
            data={
                **extra,
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
            },
            auth=auth,
            timeout=30,
        )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in results)
    for r in results:
        assert r.status_code in (200, 400), (r.status_code, r.text[:300])
        if r.status_code == 400:
            assert r.json()["error"] == "invalid_grant", r.text
    return [r.json() for r in results if r.status_code == 200]


def test_parallel_refreshes_without_grace_only_one_wins(no_grace, rp, grant):
    first = grant()
    winners = _refresh_in_parallel(no_grace, rp, first["refresh_token"])
    assert len(winners) == 1


def test_parallel_refreshes_with_grace_leave_one_live_token(
    app, base_url, rs, person, rp, grant
):
    first = grant()
    winners = _refresh_in_parallel(base_url, rp, first["refresh_token"])
    assert len(winners) >= 1
    handed_out = [w["refresh_token"] for w in winners]
    assert len(set(handed_out)) == len(handed_out)
    # At most one live refresh token per grant, whatever the interleaving.
    state = grant_state(app, unverified_claims(first["access_token"])["gid"])
    assert not state.revoked
    assert len(state.live_hashes) == 1
    active = [
        t for t in [first["refresh_token"], *handed_out] if is_active(base_url, rs, t)
    ]
    assert len(active) == 1
    assert hash_token(active[0]) == state.live_hashes[0]
    assert events(app, person.id, REUSED) == []
    rotated(base_url, rp, active[0])


# -- lifetimes -----------------------------------------------------------------
def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def test_idle_and_absolute_lifetimes(short_lived, rs, rp, grant):
    idle = grant()
    kept = grant()
    start = time.monotonic()
    # Refreshed every 1.3 s, the kept grant never idles for 2 s ...
    _sleep_until(start + 1.3)
    kept = rotated(short_lived, rp, kept["refresh_token"])
    _sleep_until(start + 2.6)
    kept = rotated(short_lived, rp, kept["refresh_token"])
    # ... while the one left alone for 2.6 s has idled out.
    assert_inactive(short_lived, rs, idle["refresh_token"])
    assert_refresh_rejected(short_lived, rp, idle["refresh_token"])
    # After 3 s in all the kept one ends too, though it was used 1.3 s ago.
    _sleep_until(start + 3.9)
    assert_inactive(short_lived, rs, kept["refresh_token"])
    assert_refresh_rejected(short_lived, rp, kept["refresh_token"])


# -- clients and scope -----------------------------------------------------------
def test_another_clients_refresh_token_is_invalid_grant(
    app, base_url, factories, person, rp, grant
):
    first = grant()
    other = factories.client(name="Other app")
    assert_refresh_rejected(base_url, other, first["refresh_token"])
    # Not a reuse: the rightful client's token still works, nothing revoked.
    rotated(base_url, rp, first["refresh_token"])
    assert events(app, person.id, REUSED) == []


def test_scope_can_be_narrowed_on_refresh(base_url, rp, grant):
    first = grant(scope="openid profile email offline_access")
    response = requests.post(
        base_url + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "scope": "openid email",
        },
        auth=(rp.client_id, rp.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    narrow = response.json()
    assert set(narrow["scope"].split()) == {"openid", "email"}
    assert set(unverified_claims(narrow["access_token"])["scope"].split()) == {
        "openid",
        "email",
    }
    # RFC 6749 §6: the grant keeps its scope; the next refresh may have it all.
    full = rotated(base_url, rp, narrow["refresh_token"])
    assert set(full["scope"].split()) == {
        "openid",
        "profile",
        "email",
        "offline_access",
    }


def test_scope_cannot_be_widened_on_refresh(base_url, rp, grant):
    first = grant(scope="openid email")
    response = requests.post(
        base_url + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "scope": "openid email profile",
        },
        auth=(rp.client_id, rp.secret),
        timeout=TIMEOUT,
    )
    assert_json_error(response, 400, "invalid_scope")
    # The refused request used nothing up.
    assert set(rotated(base_url, rp, first["refresh_token"])["scope"].split()) == {
        "openid",
        "email",
    }
