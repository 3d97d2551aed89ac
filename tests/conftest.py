"""Test fixtures: a fresh database per run (SQLite or PostgreSQL, chosen by
LATCHKEY_TEST_DB), the schema from the Alembic migrations, tables emptied
between tests, and live server processes on 127.0.0.1.

The fixtures every folder shares on top of these (the issuer, its keys, a
person, clients of each kind, browsers) are in tests/support/fixtures.py,
Chromium in tests/support/chromium.py: loaded here as plugins."""

import base64
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from app import create_app
from app.extensions import db
from tests.factories import Factories

pytest_plugins = ["tests.support.fixtures", "tests.support.chromium"]

ROOT = Path(__file__).resolve().parent.parent
# Kept between tests: the schema's version, the keys made once per run, and
# the one-row tables the migrations fill (client_registry's generation is
# renewed by the triggers when tests delete clients).
KEPT_TABLES = {
    "alembic_version",
    "signing_keys",
    "signing_key_state",
    "client_registry",
}
PG_ADMIN_URL = os.environ.get(
    "LATCHKEY_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def fresh_database(tmp_dir: Path):
    """A new, empty database of the kind LATCHKEY_TEST_DB names; dropped after."""
    kind = os.environ.get("LATCHKEY_TEST_DB", "sqlite")
    if kind == "sqlite":
        yield f"sqlite:///{tmp_dir / 'latchkey.sqlite3'}"
        return
    if kind != "postgresql":
        raise pytest.UsageError("LATCHKEY_TEST_DB must be sqlite or postgresql")
    import psycopg

    name = f"latchkey_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            PG_ADMIN_URL.rsplit("/", 1)[0].replace(
                "postgresql://", "postgresql+psycopg://"
            )
            + "/"
            + name
        )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_kek() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def server_port():
    return free_port()


UPSTREAM_SLUG = "upstream"
UPSTREAM_CLIENT_ID = "latchkey-downstream"


@pytest.fixture(scope="session")
def upstream_port():
    return free_port()


@pytest.fixture(scope="session")
def upstream_secret():
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def providers_file(tmp_path_factory, upstream_port):
    """Every downstream server knows the upstream provider; the upstream
    process itself starts only when a federation test asks for it."""
    path = tmp_path_factory.mktemp("providers") / "providers.toml"
    path.write_text(
        "[[provider]]\n"
        f'slug = "{UPSTREAM_SLUG}"\n'
        'name = "Upstream SSO"\n'
        f'issuer = "http://127.0.0.1:{upstream_port}"\n'
        f'client_id = "{UPSTREAM_CLIENT_ID}"\n'
        'client_secret_env = "LATCHKEY_PROVIDER_UPSTREAM_SECRET"\n'
        'scopes = ["openid", "email", "profile"]\n'
        "trust_email_verified = true\n"
    )
    return path


@pytest.fixture(scope="session")
def mail_dir(tmp_path_factory):
    """Where the files mail backend writes .eml files during tests."""
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="session")
def base_env(database_url, server_port, providers_file, upstream_secret, mail_dir):
    """The LATCHKEY_* settings shared by the in-process app and live servers."""
    return {
        "LATCHKEY_MAIL_DIR": str(mail_dir),
        "LATCHKEY_PROVIDERS_FILE": str(providers_file),
        "LATCHKEY_PROVIDER_UPSTREAM_SECRET": upstream_secret,
        "LATCHKEY_ENV": "testing",
        "LATCHKEY_ISSUER": f"http://127.0.0.1:{server_port}",
        "LATCHKEY_DATABASE_URL": database_url,
        "LATCHKEY_SECRET_KEY": secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": new_kek(),
        "LATCHKEY_DEMO_DATA": "false",
        "LATCHKEY_REDIS_URL": os.environ.get(
            "LATCHKEY_TEST_REDIS", "redis://127.0.0.1:6379/0"
        ),
        "LATCHKEY_RATELIMIT_PREFIX": f"latchkey-test-{secrets.token_hex(4)}",
        # Rotation as in production, scaled down: pre-published for longer
        # than the processes take to see it.
        "LATCHKEY_SIGNING_KEY_PREPUBLISH": "2",
        "LATCHKEY_SIGNING_KEY_CHECK_SECONDS": "0.25",
    }


@pytest.fixture(scope="session")
def app(base_env):
    from flask_migrate import upgrade

    application = create_app(dict(base_env))
    with application.app_context():
        upgrade()  # the schema comes from the migrations, as in production
    create_keys(application)
    return application


def create_keys(application):
    """The deploy step `flask keys`, as production runs it."""
    result = application.test_cli_runner().invoke(args=["keys"])
    assert result.exit_code == 0, result.output + repr(result.exception)


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
        # DELETE, child tables first, on both databases: a test leaves a
        # few rows, and PostgreSQL's TRUNCATE makes every table a new file
        # whether it held rows or not (about 0.1 s per test here).
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
    """A real Latchkey server on 127.0.0.1, started as production starts it
    (deploy/serve.py: granian's WSGI server, ``workers`` processes of
    ``threads`` threads)."""

    def __init__(
        self, env: dict, port: int, log_dir: Path, workers=2, threads=4, probe=True
    ):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log_dir / f"server-{port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "deploy/serve.py"],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "GRANIAN_HOST": "127.0.0.1",
                "GRANIAN_PORT": str(port),
                "GRANIAN_WORKERS": str(workers),
                "GRANIAN_BLOCKING_THREADS": str(threads),
                "GRANIAN_WORKERS_KILL_TIMEOUT": "2",
                "GRANIAN_LOG_LEVEL": "warning",
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait() if probe else self._wait_listening()

    def _wait_listening(self):
        """Wait until the port accepts connections, without an HTTP request:
        the workers stay untouched for a test of their first requests."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

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

    def start(workers=2, threads=4, probe=True, **overrides):
        server = LiveServer(
            {**base_env, **overrides},
            free_port(),
            log_dir,
            workers=workers,
            threads=threads,
            probe=probe,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Upstream:
    """A second, independent Latchkey process acting as the upstream OIDC
    provider: its own database, keys, issuer and cookie names."""

    def __init__(self, server: LiveServer, app, client_id: str):
        self.server = server
        self.url = server.url
        self.app = app
        self.client_id = client_id
        self.factories = Factories(app)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory, upstream_port, upstream_secret, server_port, log_dir):
    from flask_migrate import upgrade

    from app.models import Client
    from app.security.opaque_tokens import hash_token

    with fresh_database(tmp_path_factory.mktemp("upstream-db")) as url:
        env = {
            "LATCHKEY_ENV": "testing",
            "LATCHKEY_ISSUER": f"http://127.0.0.1:{upstream_port}",
            "LATCHKEY_DATABASE_URL": url,
            "LATCHKEY_SECRET_KEY": secrets.token_urlsafe(32),
            "LATCHKEY_KEY_ENCRYPTION_KEY": new_kek(),
            "LATCHKEY_DEMO_DATA": "false",
            "LATCHKEY_COOKIE_PREFIX": "up",
        }
        upstream_app = create_app(dict(env))
        with upstream_app.app_context():
            upgrade()
        create_keys(upstream_app)
        made = Factories(upstream_app).client(
            redirect_uri=(
                f"http://127.0.0.1:{server_port}/federation/{UPSTREAM_SLUG}/callback"
            ),
            first_party=True,
            client_id=UPSTREAM_CLIENT_ID,
            backchannel_logout_uri=(
                f"http://127.0.0.1:{server_port}"
                f"/federation/{UPSTREAM_SLUG}/backchannel-logout"
            ),
            name="Latchkey downstream",
        )
        with upstream_app.app_context():
            # The downstream was configured with this secret before the
            # upstream existed; store its hash as registration would.
            db.session.get(Client, made.client_id).secret_hash = hash_token(
                upstream_secret
            )
            db.session.commit()
            db.session.remove()
        server = LiveServer(env, upstream_port, log_dir)
        try:
            yield Upstream(server, upstream_app, made.client_id)
        finally:
            server.stop()
            with upstream_app.app_context():
                db.session.remove()
                db.engine.dispose()
