"""Refresh-token rotation (RFC 6749 §6, RFC 9700 §4.14.2) against live
servers: a new refresh token on every use, reuse detection that ends the
whole grant, the per-client grace window in which a retry of the token just
rotated gets the same successor (derived, not stored), races between
parallel refreshes, idle and absolute lifetimes, and scope on refresh."""

import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

from app.extensions import db
from app.models import Grant
from app.security.opaque_tokens import hash_token
from tests.flows.device_helpers import (
    assert_inactive,
    assert_refresh_rejected,
    events,
    grant_of_refresh_token,
    grant_state,
    is_active,
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
)
from tests.support.oauth import verify_jwt

REUSED = "oauth:refresh:reused"
PARALLEL = 20
GRACE = 10  # the retry window of the ``graceful`` client, in seconds
LENIENT = {"LATCHKEY_REFRESH_GRACE_SECONDS": GRACE}


@pytest.fixture(scope="module")
def lenient(request, app, base_env, log_dir):
    """A server whose default retry window (for clients that set none) is
    GRACE seconds; the main server keeps the default, 0."""
    return shared_server(request, base_env, log_dir, LENIENT).url


@pytest.fixture
def graceful(factories):
    """A client that opted in to a retry window (flask clients create
    --refresh-grace-seconds)."""
    return factories.client(name="Two-tab app", refresh_grace_seconds=GRACE)


@pytest.fixture
def grant(base_url, browser, person, rp):
    """Start a fresh grant of ``rp`` for ``person``; returns its token response."""
    sign_in(browser, base_url, person)

    def make(client=rp, base=base_url, **options):
        options.setdefault("scope", "openid profile email offline_access")
        return tokens_for(browser, base, person, client, **options)

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


def test_by_default_the_old_token_fails(base_url, rp, grant):
    # LATCHKEY_REFRESH_GRACE_SECONDS defaults to 0, as in Okta, Auth0, Hydra
    # and oidc-provider: a rotated-out token coming back is reuse at once.
    first = grant()
    rotated(base_url, rp, first["refresh_token"])
    assert_refresh_rejected(base_url, rp, first["refresh_token"])


def test_reuse_without_grace_revokes_the_grant(app, base_url, rs, person, rp, grant):
    first = grant()
    second = rotated(base_url, rp, first["refresh_token"])
    newest = rotated(base_url, rp, second["refresh_token"])
    assert is_active(base_url, rs, newest["access_token"])

    assert_refresh_rejected(base_url, rp, first["refresh_token"])  # the reuse
    # RFC 9700 §4.14.2: the newest token of the family dies with it.
    assert_refresh_rejected(base_url, rp, newest["refresh_token"])
    assert_inactive(base_url, rs, newest["refresh_token"])
    assert_inactive(base_url, rs, newest["access_token"])
    (event,) = events(app, person.id, REUSED)
    assert event.details["client_id"] == rp.client_id
    assert event.details["grant_id"] == unverified_claims(first["access_token"])["gid"]
    assert grant_state(app, event.details["grant_id"]).revoked


def test_a_retry_within_the_window_gets_the_same_successor(
    app, base_url, rs, issuer, jwks, person, graceful, grant
):
    first = grant(graceful)
    lost = rotated(base_url, graceful, first["refresh_token"])  # R0 -> R1, lost
    retry = rotated(base_url, graceful, first["refresh_token"])  # R0 -> R2
    # R1 == R2: the retry is answered, not replaced; with a fresh access token.
    assert retry["refresh_token"] == lost["refresh_token"]
    assert retry["access_token"] != lost["access_token"]
    claims = verify_jwt(retry["access_token"], jwks, issuer, graceful.client_id)
    gid = unverified_claims(first["access_token"])["gid"]
    assert claims["gid"] == gid
    # One live token, the successor both answers carried; the grant lives on.
    state = grant_state(app, gid)
    assert not state.revoked
    assert state.live_hashes == [hash_token(lost["refresh_token"])]
    assert is_active(base_url, rs, lost["access_token"])
    assert is_active(base_url, rs, retry["access_token"])
    nxt = rotated(base_url, graceful, lost["refresh_token"])
    assert is_active(base_url, rs, nxt["refresh_token"])
    assert events(app, person.id, REUSED) == []


def test_a_replay_after_the_window_ends_the_grant(
    app, base_url, rs, person, graceful, grant
):
    first = grant(graceful)
    second = rotated(base_url, graceful, first["refresh_token"])
    _age_grant(app, first["refresh_token"], seconds=GRACE + 50)
    assert_refresh_rejected(base_url, graceful, first["refresh_token"])
    assert_refresh_rejected(base_url, graceful, second["refresh_token"])
    assert_inactive(base_url, rs, second["access_token"])
    assert len(events(app, person.id, REUSED)) == 1


def test_the_window_covers_only_the_token_just_rotated(
    app, base_url, person, graceful, grant
):
    first = grant(graceful)
    second = rotated(base_url, graceful, first["refresh_token"])
    third = rotated(base_url, graceful, second["refresh_token"])
    # Within the window, but two rotations old: that is reuse.
    assert_refresh_rejected(base_url, graceful, first["refresh_token"])
    assert_refresh_rejected(base_url, graceful, third["refresh_token"])
    assert len(events(app, person.id, REUSED)) == 1


def test_a_shared_successor_used_again_after_a_later_rotation_is_reuse(
    app, base_url, rs, person, graceful, grant
):
    # Two tabs both hold R1 (one got it by retrying R0). Tab A moves on to
    # R2 and R3; tab B comes back with R1: the usual reuse rule applies.
    first = grant(graceful)
    shared = rotated(base_url, graceful, first["refresh_token"])
    retried = rotated(base_url, graceful, first["refresh_token"])
    assert retried["refresh_token"] == shared["refresh_token"]
    r2 = rotated(base_url, graceful, shared["refresh_token"])
    r3 = rotated(base_url, graceful, r2["refresh_token"])
    assert_refresh_rejected(base_url, graceful, shared["refresh_token"])
    assert_refresh_rejected(base_url, graceful, r3["refresh_token"])
    assert_inactive(base_url, rs, r3["access_token"])
    assert len(events(app, person.id, REUSED)) == 1


def test_the_server_default_applies_to_clients_that_set_none(
    app, lenient, factories, person, grant
):
    unset = factories.client(name="Default app")
    strict = factories.client(name="Strict app", refresh_grace_seconds=0)
    first = grant(unset, base=lenient)
    again = rotated(lenient, unset, first["refresh_token"])
    assert (
        rotated(lenient, unset, first["refresh_token"])["refresh_token"]
        == (again["refresh_token"])
    )
    # A client's own 0 wins over the server's default.
    other = grant(strict, base=lenient)
    rotated(lenient, strict, other["refresh_token"])
    assert_refresh_rejected(lenient, strict, other["refresh_token"])
    assert len(events(app, person.id, REUSED)) == 1


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


def test_parallel_refreshes_without_grace_only_one_wins(base_url, rp, grant):
    first = grant()
    winners = _refresh_in_parallel(base_url, rp, first["refresh_token"])
    assert len(winners) == 1


def test_parallel_refreshes_with_grace_all_get_the_same_successor(
    app, base_url, rs, person, graceful, grant
):
    first = grant(graceful)
    winners = _refresh_in_parallel(base_url, graceful, first["refresh_token"])
    # Every one of the requests is answered, all with the one successor.
    assert len(winners) == PARALLEL
    (successor,) = {w["refresh_token"] for w in winners}
    assert len({w["access_token"] for w in winners}) == PARALLEL
    state = grant_state(app, unverified_claims(first["access_token"])["gid"])
    assert not state.revoked
    assert state.live_hashes == [hash_token(successor)]
    assert is_active(base_url, rs, successor)
    assert not is_active(base_url, rs, first["refresh_token"])
    assert events(app, person.id, REUSED) == []
    rotated(base_url, graceful, successor)


# -- lifetimes -----------------------------------------------------------------
DAY = 86400


def _shift(app, refresh_token: str, **seconds_back) -> None:
    """Move the grant's ``created_at`` / ``last_refresh_at`` into the past,
    as if that much time had gone by (no sleeping, no race with the clock)."""
    grant_id = grant_of_refresh_token(app, refresh_token)
    with app.app_context():
        row = db.session.get(Grant, grant_id)
        values = {
            column: getattr(row, column) - timedelta(seconds=seconds)
            for column, seconds in seconds_back.items()
        }
        db.session.execute(update(Grant).where(Grant.id == grant_id).values(**values))
        db.session.commit()
        db.session.remove()


def test_idle_and_absolute_lifetimes(app, base_url, rs, rp, grant):
    # The defaults: 30 days idle, 90 days in all.
    idle, old, kept = grant(), grant(), grant()
    _shift(app, idle["refresh_token"], last_refresh_at=30 * DAY + 60)
    _shift(app, old["refresh_token"], created_at=90 * DAY + 60)
    _shift(app, kept["refresh_token"], created_at=89 * DAY, last_refresh_at=29 * DAY)
    # Used within both limits, the kept grant goes on, and its idle clock
    # starts again ...
    kept = rotated(base_url, rp, kept["refresh_token"])
    _shift(app, kept["refresh_token"], last_refresh_at=29 * DAY)
    kept = rotated(base_url, rp, kept["refresh_token"])
    # ... while the one left alone for 30 days has idled out, and the one
    # made 90 days ago has ended though it was used just now.
    for ended in (idle, old):
        assert_inactive(base_url, rs, ended["refresh_token"])
        assert_refresh_rejected(base_url, rp, ended["refresh_token"])
    _shift(app, kept["refresh_token"], created_at=DAY + 60)
    assert_inactive(base_url, rs, kept["refresh_token"])
    assert_refresh_rejected(base_url, rp, kept["refresh_token"])


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
