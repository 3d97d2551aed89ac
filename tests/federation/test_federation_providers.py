"""Upstream providers come from a TOML or JSON file, their client secrets
from LATCHKEY_PROVIDER_* variables; anything wrong stops the start with a
ConfigError that names it (app/federation/providers.py)."""

import base64
import json
import secrets

import pytest

from app import create_app
from app.config import ConfigError, Settings, load_settings
from app.federation.providers import Provider, load_providers

SECRET_ENV = "LATCHKEY_PROVIDER_ACME_SECRET"

ACME_TOML = """
[[provider]]
slug = "acme"
name = "Acme SSO"
issuer = "https://sso.acme.example"
client_id = "latchkey"
client_secret_env = "LATCHKEY_PROVIDER_ACME_SECRET"
scopes = ["openid", "email"]
trust_email_verified = true
trust_mfa = true

[[provider]]
slug = "globex-2"
name = "Globex"
issuer = "https://id.globex.example/realms/staff/"
client_id = "latchkey-globex"
"""


def acme(**changes) -> dict:
    entry = {
        "slug": "acme",
        "name": "Acme SSO",
        "issuer": "https://sso.acme.example",
        "client_id": "latchkey",
        "client_secret_env": SECRET_ENV,
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


def settings_for(path, env="testing", **provider_env) -> Settings:
    return Settings(
        env=env,
        providers_file=str(path),
        provider_env={SECRET_ENV: "s3cret", **provider_env},
    )


def write_json(tmp_path, *entries, name="providers.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"provider": list(entries)}))
    return path


def load_one(tmp_path, env="testing", **changes) -> Provider:
    path = write_json(tmp_path, acme(**changes))
    (provider,) = load_providers(settings_for(path, env)).values()
    return provider


def expect_error(settings: Settings, *names: str) -> str:
    with pytest.raises(ConfigError) as raised:
        load_providers(settings)
    message = str(raised.value)
    for name in names:
        assert name in message, message
    return message


# -- what loads -------------------------------------------------------------------
def test_no_file_means_no_providers():
    assert load_providers(Settings(env="production")) == {}


def test_toml(tmp_path):
    path = tmp_path / "providers.toml"
    path.write_text(ACME_TOML)

    providers = load_providers(settings_for(path))

    assert list(providers) == ["acme", "globex-2"]
    assert providers["acme"] == Provider(
        slug="acme",
        name="Acme SSO",
        issuer="https://sso.acme.example",
        client_id="latchkey",
        client_secret="s3cret",
        scopes=("openid", "email"),
        trust_email_verified=True,
        trust_mfa=True,
    )
    globex = providers["globex-2"]
    assert globex.client_secret == ""
    assert globex.scopes == ("openid", "email", "profile")  # the default
    assert globex.trust_email_verified is False  # never trusted by default
    assert globex.trust_mfa is False


def test_json(tmp_path):
    path = write_json(tmp_path, acme(scopes=["openid", "profile"]))

    (provider,) = load_providers(settings_for(path)).values()

    assert provider.slug == "acme"
    assert provider.client_secret == "s3cret"
    assert provider.scopes == ("openid", "profile")
    assert provider.trust_email_verified is False


def test_issuer_is_kept_exactly_and_discovery_url_built_from_it(tmp_path):
    # OIDC Core §3.1.3.7: `iss` must exactly match the issuer, trailing
    # slash included; OIDC Discovery §4 drops it before /.well-known.
    slashed = load_one(tmp_path, issuer="https://tenant.example.com/")
    assert slashed.issuer == "https://tenant.example.com/"
    assert slashed.metadata_url == (
        "https://tenant.example.com/.well-known/openid-configuration"
    )
    path = load_one(tmp_path, issuer="https://id.example/realms/staff")
    assert path.metadata_url == (
        "https://id.example/realms/staff/.well-known/openid-configuration"
    )


def test_secret_comes_from_the_environment(tmp_path):
    path = write_json(tmp_path, acme())
    secret = secrets.token_urlsafe(24)
    env = {
        "LATCHKEY_ENV": "production",
        "LATCHKEY_ISSUER": "https://login.example",
        "LATCHKEY_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LATCHKEY_SECRET_KEY": secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "LATCHKEY_DEMO_DATA": "false",
        "LATCHKEY_RATELIMIT_PER_PROCESS": "true",
        "LATCHKEY_PROVIDERS_FILE": str(path),
        SECRET_ENV: secret,
    }

    (provider,) = load_providers(load_settings(env, str(tmp_path))).values()

    assert provider.client_secret == secret
    assert secret not in path.read_text()


def test_http_issuer_is_fine_outside_production(tmp_path):
    for env in ("testing", "development"):
        provider = load_one(tmp_path, env=env, issuer="http://127.0.0.1:8001")
        assert provider.issuer == "http://127.0.0.1:8001"


# -- what is refused ----------------------------------------------------------------
def test_missing_secret_variable(tmp_path):
    path = write_json(tmp_path, acme())
    settings = Settings(env="testing", providers_file=str(path), provider_env={})
    expect_error(settings, "acme", SECRET_ENV, "not set")
    settings.provider_env = {SECRET_ENV: ""}
    expect_error(settings, "acme", SECRET_ENV)


def test_secret_is_only_read_from_latchkey_provider_variables(tmp_path):
    # Settings keep only LATCHKEY_PROVIDER_* variables, so a provider entry
    # cannot make the server read (and send upstream) any other one.
    path = write_json(tmp_path, acme(client_secret_env="HOME"))
    env = {
        "LATCHKEY_ENV": "testing",
        "LATCHKEY_DATABASE_URL": "sqlite://",
        "LATCHKEY_SECRET_KEY": "test-" + secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "LATCHKEY_PROVIDERS_FILE": str(path),
        "HOME": "/root",
    }
    expect_error(load_settings(env, str(tmp_path)), "acme", "HOME", "not set")


@pytest.mark.parametrize(
    "slug",
    ["Acme", "acme_sso", "-acme", "", "acme sso", "a" * 65, "acme/x", "ü", "acme\n"],
)
def test_bad_slug(tmp_path, slug):
    path = write_json(tmp_path, acme(slug=slug))
    expect_error(settings_for(path), "slug", repr(slug))


@pytest.mark.parametrize("key", ["issuer", "name", "client_id"])
def test_missing_field(tmp_path, key):
    path = write_json(tmp_path, acme(**{key: None}))
    expect_error(settings_for(path), "acme", key, "missing")
    path = write_json(tmp_path, acme(**{key: ""}))
    expect_error(settings_for(path), "acme", key, "missing")


@pytest.mark.parametrize(
    "issuer", ["http://sso.acme.example", "http://127.0.0.1:8001", "sso.acme.example"]
)
def test_non_https_issuer_in_production(tmp_path, issuer):
    path = write_json(tmp_path, acme(issuer=issuer))
    expect_error(settings_for(path, env="production"), "acme", "issuer", "https")


@pytest.mark.parametrize(
    "issuer",
    [
        "not a uri",
        "sso.acme.example",
        "ftp://sso.acme.example",
        "https://",
        "https://sso.acme.example?tenant=1",
        "https://sso.acme.example#x",
        "https://sso.acme.example:99999",
        "https://sso acme.example",
    ],
)
def test_issuer_that_is_not_an_issuer_url(tmp_path, issuer):
    # RFC 8414 §2 / OIDC Discovery §3: absolute, with a host, no query or
    # fragment; refused outside production too.
    path = write_json(tmp_path, acme(issuer=issuer))
    expect_error(settings_for(path), "acme", "issuer")


def test_scopes_without_openid(tmp_path):
    path = write_json(tmp_path, acme(scopes=["email", "profile"]))
    expect_error(settings_for(path), "acme", "openid")


def test_slug_listed_twice(tmp_path):
    path = write_json(tmp_path, acme(), acme(name="Acme again"))
    expect_error(settings_for(path), "acme", "twice")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("providers.toml", "[[provider]\nslug = 'acme'"),
        ("providers.json", '{"provider": [{"slug": "acme",}]}'),
        ("providers.toml", '[[provider]]\nslug = "acme"\nslug = "again"\n'),
    ],
    ids=["bad-toml", "bad-json", "duplicate-key"],
)
def test_unreadable_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    expect_error(settings_for(path), "LATCHKEY_PROVIDERS_FILE", str(path))


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    expect_error(settings_for(path), "LATCHKEY_PROVIDERS_FILE", str(path))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("providers.json", "[]"),
        ("providers.json", '{"provider": {"slug": "acme"}}'),
        ("providers.json", '{"provider": ["acme"]}'),
        ("providers.toml", 'provider = "acme"\n'),
    ],
    ids=["json-list", "json-object", "json-string-entry", "toml-string"],
)
def test_wrong_shape(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    expect_error(settings_for(path), "LATCHKEY_PROVIDERS_FILE", str(path))


def test_the_app_refuses_to_start_with_a_bad_provider(tmp_path):
    path = write_json(tmp_path, acme())
    env = {
        "LATCHKEY_ENV": "testing",
        "LATCHKEY_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LATCHKEY_SECRET_KEY": "test-" + secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "LATCHKEY_DEMO_DATA": "false",
        "LATCHKEY_RATELIMIT_PER_PROCESS": "true",
        "LATCHKEY_PROVIDERS_FILE": str(path),
    }
    with pytest.raises(ConfigError, match=SECRET_ENV):
        create_app(env)
