"""/healthz (alive, no I/O) and /readyz (database, Redis, keys → 503 when
any is missing), against live servers whose dependencies come and go."""

import os
import time

import psycopg
import pytest
import requests
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from tests.conftest import PG_ADMIN_URL, create_keys, fresh_database
from tests.flows.helpers import TIMEOUT

ON_POSTGRESQL = os.environ.get("LATCHKEY_TEST_DB", "sqlite") == "postgresql"


def _probe(url, path):
    response = requests.get(url + path, timeout=TIMEOUT)
    assert response.headers["Cache-Control"] == "no-store"
    return response.status_code, response.json()


def _ready_within(url, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = _probe(url, "/readyz")
        if status == 200:
            return body
        time.sleep(0.05)
    raise AssertionError(f"not ready: {body}")


def test_a_running_server_is_alive_and_ready(live_server):
    assert _probe(live_server.url, "/healthz") == (200, {"status": "ok"})
    assert _probe(live_server.url, "/readyz") == (
        200,
        {
            "status": "ready",
            "checks": {"database": "ok", "redis": "ok", "keys": "ok"},
        },
    )


def test_not_ready_without_keys_then_ready_after_the_deploy_step_then_not_ready_without_its_database(  # noqa: E501
    tmp_path, base_env, start_server
):
    with fresh_database(tmp_path) as url:
        env = {"LATCHKEY_DATABASE_URL": url}
        fresh = create_app({**base_env, **env})
        with fresh.app_context():
            upgrade()
        try:
            server = start_server(**env)
            status, body = _probe(server.url, "/readyz")
            assert status == 503
            assert body["checks"] == {
                "database": "ok",
                "redis": "ok",
                "keys": "failing",
            }
            create_keys(fresh)
            assert _ready_within(server.url)["status"] == "ready"
            if not ON_POSTGRESQL:
                return  # SQLite: a server on a missing file is the next test
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            status, body = _probe(server.url, "/readyz")
            assert status == 503
            assert body["checks"]["database"] == "failing"
            assert body["checks"]["keys"] == "failing"
            # Alive all the same: a database outage restarts nothing.
            assert _probe(server.url, "/healthz") == (200, {"status": "ok"})
        finally:
            with fresh.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.mark.parametrize(
    "unreachable_url",
    [
        "sqlite:////nonexistent-latchkey-dir/latchkey.sqlite3",
        "postgresql+psycopg://postgres@127.0.0.1:1/latchkey",
    ],
    ids=["sqlite-missing", "postgresql-unreachable"],
)
def test_not_ready_when_the_database_is_unreachable(start_server, unreachable_url):
    server = start_server(LATCHKEY_DATABASE_URL=unreachable_url)
    status, body = _probe(server.url, "/readyz")
    assert status == 503
    assert body == {
        "status": "not ready",
        "checks": {"database": "failing", "redis": "ok", "keys": "failing"},
    }
    assert _probe(server.url, "/healthz") == (200, {"status": "ok"})


def test_not_ready_when_redis_is_configured_but_away(start_server):
    server = start_server(LATCHKEY_REDIS_URL="redis://127.0.0.1:1/0")
    status, body = _probe(server.url, "/readyz")
    assert status == 503
    assert body["checks"] == {"database": "ok", "redis": "failing", "keys": "ok"}
    assert _probe(server.url, "/healthz") == (200, {"status": "ok"})
