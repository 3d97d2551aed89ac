"""Test fixtures: a fresh database per run (SQLite or PostgreSQL, chosen by
LATCHKEY_TEST_DB), the schema from the Alembic migrations, tables emptied
between tests, and live server processes on 127.0.0.1."""

import base64
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.factories import Factories

ROOT = Path(__file__).resolve().parent.parent
KEPT_TABLES = {"alembic_version", "signing_keys"}
PG_ADMIN_URL = os.environ.get(
    "LATCHKEY_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    kind = os.environ.get("LATCHKEY_TEST_DB", "sqlite")
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'latchkey.sqlite3'}"
        return
    if kind != "postgresql":
        raise pytest.UsageError("LATCHKEY_TEST_DB must be sqlite or postgresql")
    import psycopg

    name = f"latchkey_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield (
        PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        + "/"
        + name
    )
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def server_port():
    return free_port()


@pytest.fixture(scope="session")
def base_env(database_url, server_port, tmp_path_factory):
    """The LATCHKEY_* settings shared by the in-process app and live servers."""
    return {
        "LATCHKEY_ENV": "testing",
        "LATCHKEY_ISSUER": f"http://127.0.0.1:{server_port}",
        "LATCHKEY_DATABASE_URL": database_url,
        "LATCHKEY_SECRET_KEY": secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "LATCHKEY_DEMO_DATA": "false",
        "LATCHKEY_REDIS_URL": os.environ.get(
            "LATCHKEY_TEST_REDIS", "redis://127.0.0.1:6379/0"
        ),
        "LATCHKEY_RATELIMIT_PREFIX": f"latchkey-test-{secrets.token_hex(4)}",
    }


@pytest.fixture(scope="session")
def app(base_env):
    from flask_migrate import upgrade

    application = create_app(dict(base_env))
    with application.app_context():
        upgrade()  # the schema comes from the migrations, as in production
        application.extensions["latchkey"].keys.ensure_keys()
    return application


@pytest.fixture(autouse=True)
def _clean_tables(request):
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    with application.app_context():
        db.session.remove()
        tables = [
            t for t in reversed(db.metadata.sorted_tables) if t.name not in KEPT_TABLES
        ]
        if db.engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            with db.engine.begin() as conn:
                for t in tables:
                    conn.execute(t.delete())


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def factories(app):
    return Factories(app)


class LiveServer:
    """A real Latchkey process (gunicorn) on 127.0.0.1."""

    def __init__(self, env: dict, port: int, log_dir: Path, workers=2, threads=4):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log_dir / f"server-{port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "--threads",
                str(threads),
                "-b",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "2",
                "app.wsgi:app",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log.name}")
            try:
                requests.get(self.url + "/.well-known/openid-configuration", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def live_server(app, base_env, server_port, log_dir):
    """The live server whose URL is the issuer of every token in the tests."""
    server = LiveServer(base_env, server_port, log_dir)
    yield server
    server.stop()


@pytest.fixture
def start_server(app, base_env, log_dir):
    """Start an extra live server with changed settings (same issuer)."""
    started = []

    def start(**overrides):
        server = LiveServer({**base_env, **overrides}, free_port(), log_dir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
