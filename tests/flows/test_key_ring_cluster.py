"""Signing keys as a cluster-wide fact, against two live server processes on
one database: rotation never lets a token carry a kid that either JWKS
lacks, the deploy step creates exactly one key per algorithm however many
copies of it run, and a revoked key's tokens fail at once in both."""

import json
import os
import subprocess
import sys
import time

import jwt
import pytest
import requests
from flask_migrate import upgrade
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import SigningKey
from tests.conftest import ROOT, LiveServer, free_port, fresh_database
from tests.flows.device_helpers import (
    STRICT,
    assert_inactive,
    introspection,
    shared_server,
)
from tests.flows.helpers import TIMEOUT, sign_in, tokens_for, userinfo


@pytest.fixture(scope="module")
def other_process(request, app, base_env, log_dir):
    """A second server process on the same database."""
    return shared_server(request, base_env, log_dir, STRICT).url


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args):
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    return invoke


def _jwks_kids(url) -> set[str]:
    response = requests.get(url + "/jwks.json", timeout=TIMEOUT)
    assert response.status_code == 200
    return {k["kid"] for k in response.json()["keys"]}


def _client_token(url, client) -> str:
    response = requests.post(
        url + "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


PREPUBLISH = 5  # long enough to watch the old key sign first on a busy machine


def _rotate(base_env, alg: str) -> str:
    """`flask keys rotate` as an operator's shell runs it (with this test's
    pre-publication time); returns the new kid."""
    rotator = create_app(
        {**base_env, "LATCHKEY_SIGNING_KEY_PREPUBLISH": str(PREPUBLISH)}
    )
    try:
        result = rotator.test_cli_runner().invoke(
            args=["keys", "rotate", "--alg", alg, "--json"]
        )
        assert result.exit_code == 0, result.output + repr(result.exception)
        return json.loads(result.stdout)[0]["kid"]
    finally:
        with rotator.app_context():
            db.session.remove()
            db.engine.dispose()


def test_rotation_never_signs_with_a_kid_either_jwks_lacks(
    live_server, other_process, factories, base_env
):
    servers = (live_server.url, other_process)
    client = factories.client(machine=True)
    # Both processes already agree on the current key.
    old_kid = _kid(_client_token(servers[0], client))
    # RS256: what access tokens are signed with by default (RFC 9068 §2.1).
    new_kid = _rotate(base_env, "RS256")

    # A client fetches tokens from both, and each JWKS, until both sign with
    # the new key. Every token's kid must be in the JWKS each server served
    # *before* the token was signed (as a relying party's cached copy would
    # be, up to the pre-publication time less the check interval) and after.
    cache_age = PREPUBLISH - float(base_env["LATCHKEY_SIGNING_KEY_CHECK_SECONDS"])
    cached = [(time.monotonic(), set.union(*(_jwks_kids(u) for u in servers)))]
    seen = {url: set() for url in servers}
    deadline = time.monotonic() + PREPUBLISH + 15
    while time.monotonic() < deadline:
        fetched_at = time.monotonic()
        tokens = {url: _client_token(url, client) for url in servers}
        jwks_after = [_jwks_kids(u) for u in servers]
        for url, token in tokens.items():
            kid = _kid(token)
            seen[url].add(kid)
            for kids in jwks_after:
                assert kid in kids, (url, kid, kids)
            for at, kids in cached:
                if fetched_at - at < cache_age:
                    assert kid in kids, ("cached JWKS lacked", url, kid)
        cached = [*cached[-20:], (time.monotonic(), set.intersection(*jwks_after))]
        if all(new_kid in kids for kids in seen.values()):
            break
    assert all(new_kid in kids for kids in seen.values()), seen
    assert all(old_kid in kids for kids in seen.values()), seen
    # The old key stays published for the overlap: its tokens still verify.
    assert all(old_kid in _jwks_kids(u) for u in servers)


def test_revoked_key_fails_at_once_in_both_processes(
    live_server, other_process, cli, browser, person, rp, rs
):
    servers = (live_server.url, other_process)
    sign_in(browser, servers[0], person)
    user_tokens = tokens_for(browser, servers[0], person, rp, scope="openid email")
    service_token = _client_token(servers[1], rs)
    kid = _kid(user_tokens["access_token"])
    assert _kid(service_token) == kid
    for url in servers:
        assert introspection(url, rs, service_token)["active"] is True
        assert userinfo(url, user_tokens["access_token"]).status_code == 200

    cli("keys", "revoke", "--", kid)  # a kid may start with "-"

    # At once: no waiting for any process's check interval.
    for url in servers:
        for token in (user_tokens["access_token"], service_token):
            assert_inactive(url, rs, token)
        response = userinfo(url, user_tokens["access_token"])
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # New tokens carry the successor, which both JWKS serve; the revoked
    # key leaves both JWKS within one check interval.
    for url in servers:
        fresh = _client_token(url, rs)
        assert _kid(fresh) != kid
        assert introspection(url, rs, fresh)["active"] is True
    deadline = time.monotonic() + 5
    while any(kid in _jwks_kids(u) for u in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(kid in _jwks_kids(u) for u in servers)
    assert all(_kid(_client_token(u, rs)) in _jwks_kids(u) for u in servers)


def _count_keys(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(SigningKey.alg, func.count()).group_by(SigningKey.alg)
        ).all()
        db.session.remove()
    return dict(rows)


def test_first_start_creates_exactly_one_key_per_algorithm(tmp_path, base_env, log_dir):
    with fresh_database(tmp_path) as url:
        env = {**base_env, "LATCHKEY_DATABASE_URL": url}
        fresh_app = create_app(dict(env))
        with fresh_app.app_context():
            upgrade()
        server = LiveServer(env, free_port(), log_dir)
        try:
            # Workers never create keys: a process started before the deploy
            # step serves an empty JWKS and made nothing.
            assert _jwks_kids(server.url) == set()
            assert _count_keys(fresh_app) == {}
            # Three deploy jobs race (two replicas' init containers and a
            # person): each key is created once.
            jobs = [
                subprocess.Popen(
                    [sys.executable, "-m", "flask", "keys"],
                    cwd=ROOT,
                    env={**os.environ, **env, "FLASK_APP": "app"},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for _ in range(3)
            ]
            for job in jobs:
                _, err = job.communicate(timeout=60)
                assert job.returncode == 0, err.decode()
            assert _count_keys(fresh_app) == {"ES256": 1, "RS256": 1}
            deadline = time.monotonic() + 5
            while len(_jwks_kids(server.url)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(_jwks_kids(server.url)) == 2
        finally:
            server.stop()
            with fresh_app.app_context():
                db.session.remove()
                db.engine.dispose()
