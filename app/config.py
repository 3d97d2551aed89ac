"""Settings from LATCHKEY_* environment variables, checked at start-up.

Each setting is declared once, as a field of ``Settings`` made by
``setting()``: its environment variable, parser, default, a one-line
description, a different default in some modes and what production demands
of it. ``load_settings`` loops over that table (``SETTINGS``); the README's
table is checked against it (tests/test_config.py).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.models.key import DEFAULT_ALG, SUPPORTED_ALGS

DEV_SECRET_MARKER = "dev-"
# A retry window is for a lost response or two tabs, not a second life for a
# stolen token (RFC 9700 §4.14.2).
MAX_REFRESH_GRACE_SECONDS = 60
# How long relying parties may cache the JWKS (Cache-Control max-age).
JWKS_MAX_AGE = 60
MODES = ("development", "production", "testing")


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names it."""


# A parser turns one variable's raw text into its value, raises ConfigError
# naming the variable, or returns None: blank, the default applies.
Parser = Callable[[str, str], Any]
# A production rule returns what is wrong with a value, or None.
ProductionRule = Callable[[str, Any], str | None]


def _text(variable: str, raw: str) -> str:
    return raw  # blank is a value here (an empty sender), not the default


def _whole(low: int = 0, high: int | None = None) -> Parser:
    """A whole number from ``low`` to ``high``; blank means the default."""

    def parse(variable: str, raw: str) -> int | None:
        if raw == "":
            return None
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigError(
                f"{variable} must be a whole number, got {raw!r}"
            ) from exc
        if value < 0:  # every setting is a count, a size or a number of seconds
            raise ConfigError(f"{variable} must not be negative, got {raw!r}")
        if value < low and high is None:
            raise ConfigError(f"{variable} must be at least {low}, got {raw!r}")
        if value < low or (high is not None and value > high):
            raise ConfigError(f"{variable} must be {low} to {high}, got {raw!r}")
        return value

    return parse


def _seconds(variable: str, raw: str) -> float | None:
    """A number of seconds, fractions allowed; blank means the default."""
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable} must be a number, got {raw!r}") from exc
    if value < 0:
        raise ConfigError(f"{variable} must not be negative, got {raw!r}")
    return value


def _bool(variable: str, raw: str) -> bool | None:
    if raw == "":
        return None
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _one_of(*choices: str, fold_case: bool = False) -> Parser:
    """One of ``choices`` (compared in lower case when ``fold_case``)."""
    listed = f"{', '.join(choices[:-1])} or {choices[-1]}"

    def parse(variable: str, raw: str) -> str:
        value = raw.lower() if fold_case else raw
        if value not in choices:
            raise ConfigError(f"{variable} must be {listed}, got {raw!r}")
        return value

    return parse


def _issuer(variable: str, raw: str) -> str:
    issuer = raw.rstrip("/")
    problem = issuer_problem(issuer)
    if problem:
        raise ConfigError(f"{variable} {problem}, got {issuer!r}")
    return issuer


def _identifier(variable: str, raw: str) -> str:
    if not raw.isidentifier():
        raise ConfigError(f"{variable} must be letters, digits or _")
    return raw


def _required(variable: str, value: Any) -> str | None:
    return None if value else f"{variable} is missing"


def _real_secret(variable: str, value: str) -> str | None:
    if not value or value.startswith(DEV_SECRET_MARKER):
        return f"{variable} is missing or a development value"
    if len(value) < 32:
        return f"{variable} must be at least 32 characters"
    return None


def _https(variable: str, value: str) -> str | None:
    issuer = urlparse(value)
    if issuer.scheme != "https" and issuer.hostname not in ("localhost", "127.0.0.1"):
        return f"{variable} must use https, got {value!r}"
    return None


def _off(variable: str, value: bool) -> str | None:
    return f"{variable} cannot be on in production" if value else None


@dataclass(frozen=True)
class Setting:
    """One row of the settings table: where a value comes from and its rules.

    ``default`` applies when the variable is unset (or blank, for numbers and
    switches) unless ``by_mode`` names another default for LATCHKEY_ENV;
    ``production`` says what is wrong with the value in production, if
    anything.
    """

    variable: str
    parse: Parser
    default: Any
    description: str
    by_mode: Mapping[str, Any] = field(default_factory=dict)
    production: ProductionRule | None = None
    attribute: str = ""  # the Settings field; filled in from the class

    def default_in(self, mode: str) -> Any:
        return self.by_mode.get(mode, self.default)

    def read(self, env: Mapping[str, str], mode: str) -> Any:
        """The value ``env`` gives this setting in ``mode``; raises
        ConfigError naming the variable when it cannot be parsed."""
        raw = env.get(self.variable)
        value = None if raw is None else self.parse(self.variable, raw)
        return self.default_in(mode) if value is None else value


def setting(
    variable: str,
    parse: Parser,
    default: Any,
    description: str,
    *,
    by_mode: Mapping[str, Any] | None = None,
    production: ProductionRule | None = None,
) -> Any:
    """A ``Settings`` field read from ``variable`` (see ``Setting``)."""
    row = Setting(variable, parse, default, description, by_mode or {}, production)
    return field(default=default, metadata={"setting": row})


# name -> default; each read from LATCHKEY_RATELIMIT_<NAME>.
RATE_LIMITS = {
    "login_ip": "30/minute;300/hour",  # failed sign-ins per address
    "login_account": "10/10 minutes",  # failed sign-ins per email typed
    "second_factor": "5/5 minutes",  # wrong 2FA codes per pending account
    "reset_address": "5/15 minutes",  # reset requests per email typed
    "reset_ip": "20/minute;200/hour",  # reset requests per address
    # sign-ups, email changes and verification mails, together
    "mail_address": "5/15 minutes",  # per recipient address
    "mail_ip": "20/minute;200/hour",  # per client address
    "token_client": "300/minute",  # failed token requests per client
    "reauth": "10/10 minutes",  # wrong passwords confirming a change, per account
    "link_code": "10/10 minutes",  # wrong /link codes per account and address
}


def _rate_limit_variable(name: str) -> str:
    return f"LATCHKEY_RATELIMIT_{name.upper()}"


def _rate_limits(env: Mapping[str, str]) -> dict[str, str]:
    from limits import parse_many

    limits = {}
    for name, default in RATE_LIMITS.items():
        variable = _rate_limit_variable(name)
        value = env.get(variable, default).strip()
        try:
            if value:
                parse_many(value)
        except ValueError as exc:
            raise ConfigError(
                f"{variable} must look like '10/10 minutes;100/day', got {value!r}"
            ) from exc
        limits[name] = value
    return limits


@dataclass
class Settings:
    """Every setting Latchkey reads: the settings table, one field a row."""

    env: str = setting(
        "LATCHKEY_ENV",
        _one_of(*MODES),
        "development",
        "development, production or testing",
    )
    issuer: str = setting(
        "LATCHKEY_ISSUER",
        _issuer,
        "http://127.0.0.1:5000",
        "the issuer URL (RFC 8414 §2), trailing slash dropped",
        production=_https,
    )
    database_url: str = setting(
        "LATCHKEY_DATABASE_URL",
        _text,
        "",
        "SQLAlchemy URL; SQLite under instance/ in development",
        production=_required,
    )
    secret_key: str = setting(
        "LATCHKEY_SECRET_KEY",
        _text,
        "",
        "Flask secret (CSRF); generated into instance/ in development",
        production=_real_secret,
    )
    key_encryption_key: str = setting(
        "LATCHKEY_KEY_ENCRYPTION_KEY",
        _text,
        "",
        "32 bytes, base64; generated into instance/ in development",
        production=_required,
    )
    redis_url: str = setting(
        "LATCHKEY_REDIS_URL", _text, "", "rate-limit storage shared by every process"
    )
    access_token_lifetime: int = setting(
        "LATCHKEY_ACCESS_TOKEN_LIFETIME", _whole(1, 600), 600, "seconds, at most 600"
    )
    id_token_lifetime: int = setting(
        "LATCHKEY_ID_TOKEN_LIFETIME", _whole(), 600, "seconds"
    )
    # RFC 9068 §2.1: every resource server supports RS256; ES256 is smaller
    # and faster to sign, for resource servers that accept it.
    access_token_alg: str = setting(
        "LATCHKEY_ACCESS_TOKEN_ALG",
        _one_of(*SUPPORTED_ALGS),
        DEFAULT_ALG,
        "the access tokens' signature algorithm",
    )
    authorization_code_lifetime: int = setting(
        "LATCHKEY_AUTHORIZATION_CODE_LIFETIME", _whole(), 60, "seconds"
    )
    refresh_token_idle_lifetime: int = setting(
        "LATCHKEY_REFRESH_IDLE_LIFETIME", _whole(), 30 * 86400, "seconds unused"
    )
    refresh_token_absolute_lifetime: int = setting(
        "LATCHKEY_REFRESH_ABSOLUTE_LIFETIME", _whole(), 90 * 86400, "seconds in all"
    )
    # Default retry window of clients that set none (flask clients create/
    # update --refresh-grace-seconds); 0, as in Okta, Auth0, Hydra and
    # oidc-provider: a rotated-out refresh token coming back is reuse.
    refresh_grace_seconds: int = setting(
        "LATCHKEY_REFRESH_GRACE_SECONDS",
        _whole(0, MAX_REFRESH_GRACE_SECONDS),
        0,
        "retry window of a rotated-out refresh token, seconds",
    )
    session_lifetime: int = setting(
        "LATCHKEY_SESSION_LIFETIME", _whole(), 14 * 86400, "browser session, seconds"
    )
    signing_key_overlap: int = setting(
        "LATCHKEY_SIGNING_KEY_OVERLAP",
        _whole(),
        7 * 86400,
        "seconds a rotated-out key stays in the JWKS",
    )
    # A rotated key is in the JWKS this long before it signs: longer than the
    # check interval plus JWKS_MAX_AGE (app/keys/ring.py).
    signing_key_prepublish: int = setting(
        "LATCHKEY_SIGNING_KEY_PREPUBLISH",
        _whole(),
        120,
        "seconds a rotated-in key is published before it signs",
    )
    # How often a process reads the key ring's version (seconds, may be 0.5).
    signing_key_check: float = setting(
        "LATCHKEY_SIGNING_KEY_CHECK_SECONDS",
        _seconds,
        5.0,
        "how often each process reads the key ring's version",
    )
    # Retention (app/maintenance/retention.py): how long dead rows are kept
    # before `flask maintenance purge` deletes them.
    retention_days: int = setting(
        "LATCHKEY_RETENTION_DAYS", _whole(1), 30, "days dead rows are kept"
    )
    event_retention_days: int = setting(
        "LATCHKEY_EVENT_RETENTION_DAYS", _whole(1), 365, "days events are kept"
    )
    # Rotated-out refresh tokens of live grants, kept for reuse detection.
    retention_rotated_refresh_hours: int = setting(
        "LATCHKEY_RETENTION_ROTATED_REFRESH_HOURS",
        _whole(1),
        24,
        "hours rotated-out refresh tokens of live grants are kept",
    )
    # /metrics asks for "Authorization: Bearer <this>" when it is set.
    metrics_token: str = setting(
        "LATCHKEY_METRICS_TOKEN", _text, "", "bearer token /metrics asks for"
    )
    # Production needs Redis for rate limits unless this says, explicitly,
    # that each process may count on its own.
    ratelimit_per_process: bool = setting(
        "LATCHKEY_RATELIMIT_PER_PROCESS",
        _bool,
        False,
        "each process may count rate limits on its own",
    )
    password_time_cost: int = setting(
        "LATCHKEY_PASSWORD_TIME_COST", _whole(), 2, "argon2id passes"
    )
    password_memory_kib: int = setting(
        "LATCHKEY_PASSWORD_MEMORY_KIB", _whole(), 19 * 1024, "argon2id memory, KiB"
    )
    password_parallelism: int = setting(
        "LATCHKEY_PASSWORD_PARALLELISM", _whole(), 1, "argon2id lanes"
    )
    max_body_bytes: int = setting(
        "LATCHKEY_MAX_BODY_BYTES", _whole(), 64 * 1024, "larger bodies get 413"
    )
    demo_data: bool = setting(
        "LATCHKEY_DEMO_DATA",
        _bool,
        True,
        "the demo relying party and its client",
        by_mode={"production": False, "testing": False},
        production=_off,
    )
    reauth_max_age: int = setting(
        "LATCHKEY_REAUTH_MAX_AGE",
        _whole(),
        300,
        "seconds a sign-in counts as fresh for sensitive changes",
    )
    ratelimit_prefix: str = setting(
        "LATCHKEY_RATELIMIT_PREFIX", _text, "latchkey", "key prefix in Redis"
    )
    # Rate limits (app/web/ratelimits.py), in Flask-Limiter's notation
    # ("10/10 minutes;100/day"); an empty value turns one limit off,
    # LATCHKEY_RATELIMIT_ENABLED=false all of them. Sign-in and 2FA limits
    # count failed attempts only; windows are minutes, so an attacker can
    # slow an account down but never lock its owner out for long.
    ratelimit_enabled: bool = setting(
        "LATCHKEY_RATELIMIT_ENABLED", _bool, True, "false turns every limit off"
    )
    # One LATCHKEY_RATELIMIT_<NAME> each, from the RATE_LIMITS table.
    ratelimit_limits: dict[str, str] = field(default_factory=lambda: dict(RATE_LIMITS))
    # Process the outbox in a thread of `flask run` (production runs
    # `flask outbox run` as its own process).
    outbox_thread: bool = setting(
        "LATCHKEY_OUTBOX_THREAD",
        _bool,
        False,
        "process the outbox in a thread of the web process",
        by_mode={"development": True},
    )
    # Cookies are per host, not per port: two providers on one host (an
    # upstream and a downstream) need different names.
    cookie_prefix: str = setting(
        "LATCHKEY_COOKIE_PREFIX", _identifier, "lk", "cookie names' prefix"
    )
    # SQLite only. "full" syncs the write-ahead log to disk on every commit,
    # so a power cut loses nothing committed, but writers queue behind one
    # fsync each (bench/README.md: refresh and revocation). "normal" syncs
    # at checkpoints: a crash of the process still loses nothing, a power
    # cut or OS crash may lose the last commits (a revocation or rotation).
    sqlite_synchronous: str = setting(
        "LATCHKEY_SQLITE_SYNCHRONOUS",
        _one_of("full", "normal", fold_case=True),
        "full",
        "SQLite's synchronous pragma",
    )
    # PostgreSQL connection pool of each process (SQLAlchemy QueuePool);
    # docs/PRODUCTION.md "Connections: the arithmetic". SQLite keeps
    # SQLAlchemy's own pool for files and ignores these. A pool size of 0
    # would be SQLAlchemy's "no limit", which breaks that arithmetic.
    db_pool_size: int = setting(
        "LATCHKEY_DB_POOL_SIZE", _whole(1), 10, "connections each process keeps"
    )
    db_max_overflow: int = setting(
        "LATCHKEY_DB_MAX_OVERFLOW", _whole(), 10, "more connections under load"
    )
    db_pool_timeout: int = setting(
        "LATCHKEY_DB_POOL_TIMEOUT", _whole(), 30, "seconds to wait for a connection"
    )
    # JSON lines for a log collector, or text for a person at a terminal.
    log_format: str = setting(
        "LATCHKEY_LOG_FORMAT",
        _one_of("json", "text", fold_case=True),
        "text",
        "log records on stderr",
        by_mode={"production": "json"},
    )
    trusted_proxies: int = setting(
        "LATCHKEY_TRUSTED_PROXIES",
        _whole(0, 5),
        0,
        "proxies in front that set X-Forwarded-For",
    )
    providers_file: str = setting(
        "LATCHKEY_PROVIDERS_FILE", _text, "", "upstream providers (TOML or JSON)"
    )
    mail_backend: str = setting(
        "LATCHKEY_MAIL_BACKEND",
        _one_of("files", "smtp"),
        "files",
        "where email goes",
        by_mode={"production": "smtp"},
    )
    mail_dir: str = setting(
        "LATCHKEY_MAIL_DIR", _text, "", "the files backend's folder (instance/mail)"
    )
    mail_from: str = setting(
        "LATCHKEY_MAIL_FROM", _text, "Latchkey <no-reply@localhost>", "sender"
    )
    smtp_host: str = setting("LATCHKEY_SMTP_HOST", _text, "127.0.0.1", "SMTP host")
    smtp_port: int = setting("LATCHKEY_SMTP_PORT", _whole(), 25, "SMTP port")
    smtp_security: str = setting(
        "LATCHKEY_SMTP_SECURITY",
        _one_of("none", "starttls", "tls"),
        "none",
        "SMTP transport security",
    )
    smtp_user: str = setting("LATCHKEY_SMTP_USER", _text, "", "SMTP user")
    smtp_password: str = setting("LATCHKEY_SMTP_PASSWORD", _text, "", "SMTP password")
    signup_enabled: bool = setting(
        "LATCHKEY_SIGNUP",
        _bool,
        True,
        "self-service sign-up",
        by_mode={"production": False},
    )
    password_min_length: int = setting(
        "LATCHKEY_PASSWORD_MIN_LENGTH", _whole(), 8, "characters"
    )
    password_min_score: int = setting(
        "LATCHKEY_PASSWORD_MIN_SCORE", _whole(), 3, "zxcvbn score, 0 to 4"
    )
    reset_link_lifetime: int = setting(
        "LATCHKEY_RESET_LINK_LIFETIME", _whole(), 1800, "seconds"
    )
    # LATCHKEY_PROVIDER_* variables, where provider client secrets are read.
    provider_env: dict[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    def kek_bytes(self) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(self.key_encryption_key + "==")
        except ValueError as exc:
            raise ConfigError("LATCHKEY_KEY_ENCRYPTION_KEY is not base64") from exc
        if len(raw) != 32:
            raise ConfigError(
                "LATCHKEY_KEY_ENCRYPTION_KEY must be 32 bytes, base64-encoded "
                "(python -c 'import secrets,base64;"
                "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())')"
            )
        return raw


# The settings table, in declaration order.
SETTINGS: tuple[Setting, ...] = tuple(
    replace(f.metadata["setting"], attribute=f.name)
    for f in fields(Settings)
    if "setting" in f.metadata
)


def variables() -> dict[str, Any]:
    """Every LATCHKEY_* variable ``load_settings`` reads, with its default
    outside any mode's own (LATCHKEY_PROVIDER_* secrets aside)."""
    table = {row.variable: row.default for row in SETTINGS}
    table.update({_rate_limit_variable(n): d for n, d in RATE_LIMITS.items()})
    return table


def load_settings(
    env: Mapping[str, str] | None = None, instance_path: str | None = None
) -> Settings:
    """Read settings from ``env`` (default: os.environ) and check them.

    Development fills in missing secrets from a file under ``instance/`` so the
    trial needs no set-up; production raises ConfigError naming the setting.
    """
    env = dict(os.environ if env is None else env)
    # LATCHKEY_ENV first: it picks the defaults of the others.
    mode = next(row for row in SETTINGS if row.attribute == "env").read(
        env, "development"
    )
    s = Settings(**{row.attribute: row.read(env, mode) for row in SETTINGS})
    s.ratelimit_limits = _rate_limits(env)
    s.provider_env = {
        k: v for k, v in env.items() if k.startswith("LATCHKEY_PROVIDER_")
    }
    if s.is_production:
        _check_production(s)
    else:
        _fill_development_defaults(s, instance_path)
    s.kek_bytes()  # fail at start, not at first signature
    return s


def issuer_problem(issuer: str) -> str | None:
    """What is wrong with an issuer identifier, or None. RFC 8414 §2 and
    OIDC Discovery §3: an absolute URL with a host and no query or
    fragment (https is required in production, separately)."""
    if any(c.isspace() or ord(c) < 32 for c in issuer):
        return "must not contain spaces"
    try:
        parsed = urlparse(issuer)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return "has an invalid port"
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "must be an absolute URL (https, or http outside production)"
    if parsed.query or parsed.fragment or "?" in issuer or "#" in issuer:
        return "must have no query or fragment"
    return None


def _check_production(s: Settings) -> None:
    problems = []
    for row in SETTINGS:
        problem = row.production and row.production(
            row.variable, getattr(s, row.attribute)
        )
        if problem:
            problems.append(problem)
    # Rules that relate two settings.
    if not s.redis_url and not s.ratelimit_per_process:
        # Several processes without a shared store each allow the whole
        # limit: four processes let four times the password guesses through.
        problems.append(
            "LATCHKEY_REDIS_URL is missing (or set LATCHKEY_RATELIMIT_PER_PROCESS"
            "=true to count rate limits in each process on its own)"
        )
    if s.signing_key_prepublish < JWKS_MAX_AGE + s.signing_key_check:
        # Otherwise a relying party's cached JWKS (or another process) can
        # lack the key a token was just signed with.
        problems.append(
            "LATCHKEY_SIGNING_KEY_PREPUBLISH must be at least "
            f"{JWKS_MAX_AGE} + LATCHKEY_SIGNING_KEY_CHECK_SECONDS"
        )
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))


def _fill_development_defaults(s: Settings, instance_path: str | None) -> None:
    base = Path(instance_path or "instance")
    if not s.database_url:
        base.mkdir(parents=True, exist_ok=True)  # SQLite will not make the folder
        s.database_url = f"sqlite:///{(base / 'latchkey.sqlite3').resolve()}"
    if s.secret_key and s.key_encryption_key:
        return
    # Generated once per checkout so that a restart keeps sessions and keys.
    stored = _development_secrets(base / "dev-secrets.json")
    s.secret_key = s.secret_key or stored["secret_key"]
    s.key_encryption_key = s.key_encryption_key or stored["key_encryption_key"]


def _development_secrets(path: Path) -> dict[str, str]:
    """The development secrets kept in ``path``, made on first use.

    The file is created with mode 0600 by ``os.open`` itself, so it is never
    readable by others, not even between creating and writing it. A file
    found with a looser mode (made by hand, or copied) is tightened to 0600
    rather than refused: these secrets only guard a trial on this machine,
    and refusing would just stop ``make run``. A file another process
    created meanwhile (O_EXCL lost the race) is read, not overwritten.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {
            "secret_key": DEV_SECRET_MARKER + secrets.token_urlsafe(32),
            "key_encryption_key": base64.urlsafe_b64encode(
                secrets.token_bytes(32)
            ).decode(),
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                json.dump(stored, file)
            return stored
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return json.loads(path.read_text())
