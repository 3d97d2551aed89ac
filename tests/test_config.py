"""load_settings: production refuses unsafe settings by name; development
fills in its own secrets and keeps them."""

import base64
import json
import os
import re
import secrets
import sqlite3
import stat
from pathlib import Path

import pytest

from app.config import SETTINGS, ConfigError, load_settings, variables


def _kek() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def production_env():
    """Settings a real deployment could start with."""
    return {
        "LATCHKEY_ENV": "production",
        "LATCHKEY_ISSUER": "https://id.example.com/",
        "LATCHKEY_DATABASE_URL": "postgresql+psycopg://latchkey@db/latchkey",
        "LATCHKEY_SECRET_KEY": secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": _kek(),
        "LATCHKEY_REDIS_URL": "redis://redis:6379/0",
    }


def _refused(env, tmp_path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env, instance_path=str(tmp_path))
    return str(info.value)


def test_production_with_good_settings_loads(production_env, tmp_path):
    s = load_settings(production_env, instance_path=str(tmp_path))
    assert s.is_production
    assert s.issuer == "https://id.example.com"  # trailing slash dropped
    assert s.secret_key == production_env["LATCHKEY_SECRET_KEY"]
    assert len(s.kek_bytes()) == 32
    assert s.demo_data is False
    assert list(tmp_path.iterdir()) == []  # nothing generated in production


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:5000", "http://localhost:8080"])
def test_production_allows_http_issuer_on_loopback(production_env, tmp_path, issuer):
    production_env["LATCHKEY_ISSUER"] = issuer
    assert load_settings(production_env, instance_path=str(tmp_path)).issuer == issuer


def test_production_refuses_development_secret(production_env, tmp_path):
    production_env["LATCHKEY_SECRET_KEY"] = "dev-" + secrets.token_urlsafe(32)
    assert "LATCHKEY_SECRET_KEY" in _refused(production_env, tmp_path)


@pytest.mark.parametrize("value", [None, ""])
def test_production_refuses_missing_secret(production_env, tmp_path, value):
    if value is None:
        del production_env["LATCHKEY_SECRET_KEY"]
    else:
        production_env["LATCHKEY_SECRET_KEY"] = value
    assert "LATCHKEY_SECRET_KEY" in _refused(production_env, tmp_path)
    assert not (tmp_path / "dev-secrets.json").exists()


def test_production_refuses_short_secret(production_env, tmp_path):
    production_env["LATCHKEY_SECRET_KEY"] = "too-short"
    assert "LATCHKEY_SECRET_KEY" in _refused(production_env, tmp_path)


@pytest.mark.parametrize(
    "issuer",
    [
        "http://id.example.com",
        "http://localhost.example.com",
        "http://10.0.0.5:5000",
    ],
)
def test_production_refuses_http_issuer_off_loopback(production_env, tmp_path, issuer):
    production_env["LATCHKEY_ISSUER"] = issuer
    message = _refused(production_env, tmp_path)
    assert "LATCHKEY_ISSUER" in message
    assert issuer in message


def test_production_refuses_missing_key_encryption_key(production_env, tmp_path):
    del production_env["LATCHKEY_KEY_ENCRYPTION_KEY"]
    assert "LATCHKEY_KEY_ENCRYPTION_KEY" in _refused(production_env, tmp_path)


def test_production_refuses_short_key_encryption_key(production_env, tmp_path):
    production_env["LATCHKEY_KEY_ENCRYPTION_KEY"] = base64.urlsafe_b64encode(
        b"sixteen bytes..."
    ).decode()
    assert "LATCHKEY_KEY_ENCRYPTION_KEY" in _refused(production_env, tmp_path)


def test_production_refuses_missing_database_url(production_env, tmp_path):
    del production_env["LATCHKEY_DATABASE_URL"]
    assert "LATCHKEY_DATABASE_URL" in _refused(production_env, tmp_path)


def test_production_refuses_demo_data(production_env, tmp_path):
    production_env["LATCHKEY_DEMO_DATA"] = "true"
    assert "LATCHKEY_DEMO_DATA" in _refused(production_env, tmp_path)


def test_production_names_every_problem_at_once(tmp_path):
    message = _refused(
        {"LATCHKEY_ENV": "production", "LATCHKEY_ISSUER": "http://id.example.com"},
        tmp_path,
    )
    for name in (
        "LATCHKEY_SECRET_KEY",
        "LATCHKEY_KEY_ENCRYPTION_KEY",
        "LATCHKEY_ISSUER",
        "LATCHKEY_DATABASE_URL",
    ):
        assert name in message


def test_unknown_mode_is_refused(tmp_path):
    assert "LATCHKEY_ENV" in _refused({"LATCHKEY_ENV": "prod"}, tmp_path)


def test_development_generates_secrets_once_and_keeps_them(tmp_path):
    instance = tmp_path / "instance"
    env = {"LATCHKEY_ENV": "development"}
    first = load_settings(env, instance_path=str(instance))
    assert first.secret_key.startswith("dev-")
    assert len(first.kek_bytes()) == 32
    assert first.demo_data is True
    assert first.database_url == f"sqlite:///{(instance / 'latchkey.sqlite3')}"
    secrets_file = instance / "dev-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert json.loads(secrets_file.read_text()) == {
        "secret_key": first.secret_key,
        "key_encryption_key": first.key_encryption_key,
    }

    second = load_settings(env, instance_path=str(instance))
    assert second.secret_key == first.secret_key
    assert second.key_encryption_key == first.key_encryption_key


def test_development_secrets_differ_per_instance(tmp_path):
    a = load_settings({}, instance_path=str(tmp_path / "a"))
    b = load_settings({}, instance_path=str(tmp_path / "b"))
    assert a.is_development
    assert a.secret_key != b.secret_key
    assert a.key_encryption_key != b.key_encryption_key


def test_development_keeps_secrets_it_is_given(tmp_path):
    kek = _kek()
    s = load_settings(
        {"LATCHKEY_SECRET_KEY": "given-secret", "LATCHKEY_KEY_ENCRYPTION_KEY": kek},
        instance_path=str(tmp_path),
    )
    assert (s.secret_key, s.key_encryption_key) == ("given-secret", kek)
    assert not (tmp_path / "dev-secrets.json").exists()


@pytest.mark.parametrize(
    "name",
    [
        "LATCHKEY_ACCESS_TOKEN_LIFETIME",
        "LATCHKEY_REFRESH_IDLE_LIFETIME",
        "LATCHKEY_PASSWORD_MEMORY_KIB",
        "LATCHKEY_MAX_BODY_BYTES",
    ],
)
@pytest.mark.parametrize("raw", ["ten", "1.5", "60s", "-1"])
def test_bad_integer_names_the_variable(tmp_path, name, raw):
    message = _refused({name: raw}, tmp_path)
    assert name in message
    assert repr(raw) in message


@pytest.mark.parametrize("lifetime", ["601", "3600", "0", "-5"])
def test_access_token_lifetime_must_be_at_most_ten_minutes(tmp_path, lifetime):
    message = _refused({"LATCHKEY_ACCESS_TOKEN_LIFETIME": lifetime}, tmp_path)
    assert "LATCHKEY_ACCESS_TOKEN_LIFETIME" in message


def test_access_token_lifetime_of_ten_minutes_is_accepted(tmp_path):
    s = load_settings(
        {"LATCHKEY_ACCESS_TOKEN_LIFETIME": "600"}, instance_path=str(tmp_path)
    )
    assert s.access_token_lifetime == 600


@pytest.mark.parametrize(
    "issuer",
    [
        "not a uri",
        "127.0.0.1:5000",
        "http://",
        "https://idp.example?x=1",
        "https://idp.example#f",
    ],
)
def test_issuer_must_be_an_issuer_url(tmp_path, issuer):
    # RFC 8414 §2: absolute, with a host, no query or fragment.
    message = _refused({"LATCHKEY_ISSUER": issuer}, tmp_path)
    assert "LATCHKEY_ISSUER" in message


def test_development_default_database_can_be_created(tmp_path):
    """Secrets from the environment, database left to default: SQLite must
    still find a directory to create its file in."""
    instance = tmp_path / "fresh-checkout" / "instance"
    s = load_settings(
        {"LATCHKEY_SECRET_KEY": "given-secret", "LATCHKEY_KEY_ENCRYPTION_KEY": _kek()},
        instance_path=str(instance),
    )
    path = s.database_url.removeprefix("sqlite:///")
    sqlite3.connect(path).close()
    assert (instance / "latchkey.sqlite3").exists()


def test_trusted_proxies_decide_which_address_is_the_clients(base_env):
    from flask import request

    from app import create_app

    def seen_address(**env):
        application = create_app({**base_env, **env})

        @application.route("/_test/ip")
        def ip():
            return request.remote_addr

        headers = {"X-Forwarded-For": "203.0.113.9"}
        return application.test_client().get("/_test/ip", headers=headers).text

    # Without a proxy configured, a client cannot pick its own address.
    assert seen_address() == "127.0.0.1"
    assert seen_address(LATCHKEY_TRUSTED_PROXIES="1") == "203.0.113.9"


@pytest.mark.parametrize("value", ["-1", "6", "many"])
def test_trusted_proxies_out_of_range_are_refused(value, tmp_path):
    with pytest.raises(ConfigError, match="LATCHKEY_TRUSTED_PROXIES"):
        load_settings(
            {"LATCHKEY_ENV": "development", "LATCHKEY_TRUSTED_PROXIES": value},
            instance_path=str(tmp_path),
        )


def test_sign_in_still_answers_when_redis_is_down(app, base_env, factories):
    """Rate limits fall back to counting in the process; a sign-in never
    turns into a 500 because the limit store is away."""
    from app import create_app
    from tests.conftest import free_port

    account = factories.account()
    closed = f"redis://127.0.0.1:{free_port()}/0"
    client = create_app({**base_env, "LATCHKEY_REDIS_URL": closed}).test_client()
    page = client.get("/login")
    token = page.text.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    wrong = client.post(
        "/login",
        data={"csrf_token": token, "email": account.email, "password": "nope"},
    )
    assert wrong.status_code == 401
    right = client.post(
        "/login",
        data={
            "csrf_token": token,
            "email": account.email,
            "password": account.password,
        },
    )
    assert right.status_code == 302


def test_refresh_grace_is_off_by_default_and_bounded(tmp_path):
    """A rotated-out refresh token coming back is reuse unless a client (or
    the operator's default) opts in to a short retry window."""
    dev = {"LATCHKEY_ENV": "development"}
    assert load_settings(dev, instance_path=str(tmp_path)).refresh_grace_seconds == 0
    set_ = {**dev, "LATCHKEY_REFRESH_GRACE_SECONDS": "15"}
    assert load_settings(set_, instance_path=str(tmp_path)).refresh_grace_seconds == 15
    for bad in ("-1", "61"):
        message = _refused({**dev, "LATCHKEY_REFRESH_GRACE_SECONDS": bad}, tmp_path)
        assert "LATCHKEY_REFRESH_GRACE_SECONDS" in message


def test_production_refuses_to_start_without_redis(production_env, tmp_path):
    del production_env["LATCHKEY_REDIS_URL"]
    message = _refused(production_env, tmp_path)
    assert "LATCHKEY_REDIS_URL" in message
    assert "LATCHKEY_RATELIMIT_PER_PROCESS" in message
    # Only when told, explicitly, that each process may count on its own.
    production_env["LATCHKEY_RATELIMIT_PER_PROCESS"] = "true"
    s = load_settings(production_env, instance_path=str(tmp_path))
    assert s.ratelimit_per_process
    assert not s.redis_url


def test_production_refuses_prepublication_shorter_than_jwks_caching(
    production_env, tmp_path
):
    production_env["LATCHKEY_SIGNING_KEY_PREPUBLISH"] = "30"
    assert "LATCHKEY_SIGNING_KEY_PREPUBLISH" in _refused(production_env, tmp_path)


@pytest.mark.parametrize(("setting", "pragma"), [(None, 2), ("normal", 1), ("FULL", 2)])
def test_sqlite_sync_setting_reaches_every_connection(tmp_path, setting, pragma):
    """LATCHKEY_SQLITE_SYNCHRONOUS: FULL (2) unless set to NORMAL (1)."""
    from sqlalchemy import text

    from app import create_app
    from app.extensions import db

    env = {
        "LATCHKEY_ENV": "testing",
        "LATCHKEY_DATABASE_URL": f"sqlite:///{tmp_path / 'sync.sqlite3'}",
        "LATCHKEY_SECRET_KEY": "given-secret",
        "LATCHKEY_KEY_ENCRYPTION_KEY": _kek(),
    }
    if setting is not None:
        env["LATCHKEY_SQLITE_SYNCHRONOUS"] = setting
    application = create_app(env)
    with application.app_context():
        assert db.session.execute(text("PRAGMA synchronous")).scalar() == pragma
        db.session.remove()
        db.engine.dispose()


def test_sqlite_sync_setting_is_checked():
    with pytest.raises(ConfigError, match="LATCHKEY_SQLITE_SYNCHRONOUS"):
        load_settings(
            {
                "LATCHKEY_SECRET_KEY": "given-secret",
                "LATCHKEY_KEY_ENCRYPTION_KEY": _kek(),
                "LATCHKEY_SQLITE_SYNCHRONOUS": "off",
            }
        )


def test_pool_settings_default_to_ten_and_ten(tmp_path):
    s = load_settings({}, instance_path=str(tmp_path))
    assert (s.db_pool_size, s.db_max_overflow, s.db_pool_timeout) == (10, 10, 30)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LATCHKEY_DB_POOL_SIZE", "-1"),
        ("LATCHKEY_DB_POOL_SIZE", "0"),  # SQLAlchemy: 0 = no limit at all
        ("LATCHKEY_DB_POOL_SIZE", "many"),
        ("LATCHKEY_DB_MAX_OVERFLOW", "-1"),  # SQLAlchemy: -1 = no limit
        ("LATCHKEY_DB_MAX_OVERFLOW", "2.5"),
        ("LATCHKEY_DB_POOL_TIMEOUT", "-3"),
    ],
)
def test_pool_settings_are_checked(tmp_path, name, raw):
    assert name in _refused({name: raw}, tmp_path)


def test_pool_settings_size_the_postgresql_pool(base_env):
    """Each process opens at most pool_size + max_overflow connections and
    waits pool_timeout seconds for one (docs/PRODUCTION.md arithmetic)."""
    from app import create_app
    from app.extensions import db

    application = create_app(
        {
            **base_env,
            "LATCHKEY_DB_POOL_SIZE": "3",
            "LATCHKEY_DB_MAX_OVERFLOW": "0",
            "LATCHKEY_DB_POOL_TIMEOUT": "7",
        }
    )
    with application.app_context():
        pool = db.engine.pool
        if base_env["LATCHKEY_DATABASE_URL"].startswith("sqlite"):
            # SQLite keeps SQLAlchemy's default pool for a file.
            assert application.config["SQLALCHEMY_ENGINE_OPTIONS"].keys() == {
                "connect_args"
            }
        else:
            assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 0, 7)
            connections = [db.engine.connect() for _ in range(3)]
            try:
                assert pool.checkedout() == 3
            finally:
                for connection in connections:
                    connection.close()
        db.session.remove()
        db.engine.dispose()


def test_blank_numbers_and_switches_mean_the_default_blank_text_is_a_value(tmp_path):
    s = load_settings(
        {
            "LATCHKEY_ACCESS_TOKEN_LIFETIME": "",
            "LATCHKEY_SIGNING_KEY_CHECK_SECONDS": "",
            "LATCHKEY_RATELIMIT_ENABLED": "",
            "LATCHKEY_MAIL_FROM": "",
            "LATCHKEY_RATELIMIT_LOGIN_IP": "",  # an empty limit is "off"
        },
        instance_path=str(tmp_path),
    )
    assert (s.access_token_lifetime, s.signing_key_check) == (600, 5.0)
    assert s.ratelimit_enabled is True
    assert s.mail_from == ""
    assert s.ratelimit_limits["login_ip"] == ""
    assert "LATCHKEY_COOKIE_PREFIX" in _refused(
        {"LATCHKEY_COOKIE_PREFIX": ""}, tmp_path
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("development", ("text", "files", True, True, True)),
        ("testing", ("text", "files", True, False, False)),
        ("production", ("json", "smtp", False, False, False)),
    ],
)
def test_defaults_that_depend_on_the_mode(production_env, tmp_path, mode, expected):
    """log format, mail backend, sign-up, demo data, outbox thread."""
    env = {**production_env, "LATCHKEY_ENV": mode}
    s = load_settings(env, instance_path=str(tmp_path))
    seen = (s.log_format, s.mail_backend, s.signup_enabled, s.demo_data)
    assert (*seen, s.outbox_thread) == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LATCHKEY_RETENTION_DAYS", "0"),
        ("LATCHKEY_EVENT_RETENTION_DAYS", "0"),
        ("LATCHKEY_RETENTION_ROTATED_REFRESH_HOURS", "0"),
        ("LATCHKEY_SIGNING_KEY_CHECK_SECONDS", "-0.5"),
        ("LATCHKEY_SIGNING_KEY_CHECK_SECONDS", "often"),
        ("LATCHKEY_SIGNING_KEY_PREPUBLISH", "-1"),
        ("LATCHKEY_LOG_FORMAT", "xml"),
        ("LATCHKEY_MAIL_BACKEND", "pigeon"),
        ("LATCHKEY_SMTP_SECURITY", "ssl"),
        ("LATCHKEY_SMTP_PORT", "smtp"),
        ("LATCHKEY_COOKIE_PREFIX", "lk-2"),
    ],
)
def test_out_of_range_values_are_refused_by_name(tmp_path, name, raw):
    message = _refused({name: raw}, tmp_path)
    assert name in message


def test_choices_that_ignore_case_store_lower_case(tmp_path):
    s = load_settings(
        {"LATCHKEY_LOG_FORMAT": "JSON", "LATCHKEY_SQLITE_SYNCHRONOUS": "Normal"},
        instance_path=str(tmp_path),
    )
    assert (s.log_format, s.sqlite_synchronous) == ("json", "normal")


def test_every_default_is_a_value_its_variable_could_be_set_to():
    """The table is coherent: a default written out as the variable's text
    parses back to itself."""
    for row in SETTINGS:
        for default in (row.default, *row.by_mode.values()):
            assert row.parse(row.variable, str(default)) == default, row.variable


# README's names for the defaults it shows; other cells ("on in development",
# "none (memory)") describe and are not compared.
_README_WORDS = {"on": "true", "off": "false", "none": ""}
# Variables in the README's table that load_settings does not read: they are
# read by a library (prometheus_client) and listed for the operator.
_README_OTHERS = {"PROMETHEUS_MULTIPROC_DIR"}


def _readme_settings() -> dict[str, str]:
    """variable -> default cell of each variable in the README's table; a
    name written `_REST` continues `LATCHKEY_<first word>` of its row."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("| variable | default | meaning |\n| --- | --- | --- |\n")[1]
    found: dict[str, str] = {}
    for line in table.split("\n\n")[0].splitlines():
        names_cell, default_cell = line.split(" | ")[:2]
        names = [n.strip(" |`") for n in names_cell.split(" / ")]
        prefix = "_".join(names[0].split("_")[:2])
        names = [prefix + n if n.startswith("_") else n for n in names]
        defaults = default_cell.split(" / ")
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), line
        for name, default in zip(names, defaults, strict=True):
            assert name not in found, f"{name} is in the README twice"
            found[name] = default.strip()
    return found


def _readme_literal(cell: str) -> str | None:
    """The text a README default cell stands for, or None for prose."""
    if re.fullmatch(r"`[^`]*`", cell):
        return cell.strip("`")
    if re.fullmatch(r"\d+", cell):
        return cell
    if days := re.fullmatch(r"(\d+) days", cell):
        return str(int(days[1]) * 86400)
    return _README_WORDS.get(cell)


def test_readme_lists_exactly_the_settings_with_their_defaults():
    readme = _readme_settings()
    table = variables()
    assert set(readme) - _README_OTHERS == set(table)
    rows = {row.variable: row for row in SETTINGS}
    compared = 0
    for name, cell in readme.items():
        literal = _readme_literal(cell)
        if name in _README_OTHERS or literal is None:
            continue
        row = rows.get(name)
        shown = row.parse(name, literal) if row else literal.strip()
        assert shown == table[name], f"README says {name} defaults to {cell}"
        compared += 1
    assert compared > len(table) / 2  # most defaults are shown, and checked


def test_development_secrets_file_is_never_readable_by_others(tmp_path, monkeypatch):
    """Created with mode 0600 by os.open itself: even with umask 0, and no
    chmod afterwards to close a window in which it was world-readable."""

    def no_chmod(*args, **kwargs):
        raise AssertionError("created with the wrong mode and fixed up later")

    monkeypatch.setattr(os, "chmod", no_chmod)
    old_umask = os.umask(0)
    try:
        load_settings({}, instance_path=str(tmp_path))
    finally:
        os.umask(old_umask)
    secrets_file = tmp_path / "dev-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_development_secrets_file_with_a_looser_mode_is_tightened(tmp_path):
    """Tightened, not refused: the secrets only guard a trial on this
    machine; the file's secrets are kept."""
    first = load_settings({}, instance_path=str(tmp_path))
    secrets_file = tmp_path / "dev-secrets.json"
    secrets_file.chmod(0o644)
    again = load_settings({}, instance_path=str(tmp_path))
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert (again.secret_key, again.key_encryption_key) == (
        first.secret_key,
        first.key_encryption_key,
    )
