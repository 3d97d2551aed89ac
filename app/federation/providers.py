"""Upstream OpenID Connect providers, from configuration only.

A TOML or JSON file named by LATCHKEY_PROVIDERS_FILE lists them:

    [[provider]]
    slug = "acme"
    name = "Acme SSO"
    issuer = "https://sso.acme.example"
    client_id = "latchkey"
    client_secret_env = "LATCHKEY_PROVIDER_ACME_SECRET"   # never in the database
    scopes = ["openid", "email", "profile"]
    trust_email_verified = true
    trust_mfa = false        # true: an upstream amr saying MFA skips local 2FA
"""

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from app.config import ConfigError, Settings, issuer_problem

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")  # fullmatch: "$" allows a "\n"


@dataclass(frozen=True)
class Provider:
    slug: str
    name: str
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    trust_email_verified: bool
    trust_mfa: bool = False

    @property
    def metadata_url(self) -> str:
        # OIDC Discovery §4: a trailing "/" of the issuer is dropped here only;
        # `iss` values are compared with the issuer exactly as configured.
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


def load_providers(settings: Settings) -> dict[str, Provider]:
    """Providers by slug; raises ConfigError naming what is wrong."""
    if not settings.providers_file:
        return {}
    path = Path(settings.providers_file)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"LATCHKEY_PROVIDERS_FILE {path}: {exc}") from exc
    entries = data.get("provider", []) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(
            f"LATCHKEY_PROVIDERS_FILE {path}: expected a list of provider tables"
        )
    providers = {}
    for entry in entries:
        provider = _provider(entry, settings)
        if provider.slug in providers:
            raise ConfigError(f"provider slug {provider.slug!r} is listed twice")
        providers[provider.slug] = provider
    return providers


def _provider(entry: dict, settings: Settings) -> Provider:
    slug = str(entry.get("slug", ""))
    if not SLUG.fullmatch(slug):
        raise ConfigError(f"provider slug {slug!r}: use a-z, 0-9 and -")
    for key in ("name", "issuer", "client_id"):
        if not entry.get(key):
            raise ConfigError(f"provider {slug}: {key} is missing")
    secret_env = entry.get("client_secret_env")
    secret = settings.provider_env.get(secret_env, "") if secret_env else ""
    secret = secret or entry.get("client_secret", "")
    if secret_env and not secret:
        raise ConfigError(f"provider {slug}: {secret_env} is not set")
    problem = issuer_problem(str(entry["issuer"]))
    if problem:
        raise ConfigError(f"provider {slug}: issuer {problem}")
    if settings.is_production and not str(entry["issuer"]).startswith("https://"):
        raise ConfigError(f"provider {slug}: issuer must use https")
    scopes = tuple(entry.get("scopes", ("openid", "email", "profile")))
    if "openid" not in scopes:
        raise ConfigError(f"provider {slug}: scopes must include openid")
    return Provider(
        slug=slug,
        name=str(entry["name"]),
        issuer=str(entry["issuer"]),
        client_id=str(entry["client_id"]),
        client_secret=secret,
        scopes=scopes,
        trust_email_verified=bool(entry.get("trust_email_verified", False)),
        trust_mfa=bool(entry.get("trust_mfa", False)),
    )
