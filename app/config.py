"""Settings from LATCHKEY_* environment variables, checked at start-up."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from app.models.key import DEFAULT_ALG, SUPPORTED_ALGS

DEV_SECRET_MARKER = "dev-"
# A retry window is for a lost response or two tabs, not a second life for a
# stolen token (RFC 9700 §4.14.2).
MAX_REFRESH_GRACE_SECONDS = 60
# How long relying parties may cache the JWKS (Cache-Control max-age).
JWKS_MAX_AGE = 60


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names it."""


def _int(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if value < 0:  # every setting is a count, a size or a number of seconds
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _float(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


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


def _rate_limits(env) -> dict:
    from limits import parse_many

    limits = {}
    for name, default in RATE_LIMITS.items():
        variable = f"LATCHKEY_RATELIMIT_{name.upper()}"
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
    """Every setting Latchkey reads, with its environment variable."""

    env: str = "development"  # LATCHKEY_ENV: development | production | testing
    issuer: str = "http://127.0.0.1:5000"  # LATCHKEY_ISSUER
    database_url: str = ""  # LATCHKEY_DATABASE_URL
    secret_key: str = ""  # LATCHKEY_SECRET_KEY
    key_encryption_key: str = ""  # LATCHKEY_KEY_ENCRYPTION_KEY (base64, 32 bytes)
    redis_url: str = ""  # LATCHKEY_REDIS_URL
    access_token_lifetime: int = 600  # LATCHKEY_ACCESS_TOKEN_LIFETIME (s, <= 600)
    id_token_lifetime: int = 600  # LATCHKEY_ID_TOKEN_LIFETIME
    # RFC 9068 §2.1: every resource server supports RS256; ES256 is smaller
    # and faster to sign, for resource servers that accept it.
    access_token_alg: str = DEFAULT_ALG  # LATCHKEY_ACCESS_TOKEN_ALG: RS256 | ES256
    authorization_code_lifetime: int = 60  # LATCHKEY_AUTHORIZATION_CODE_LIFETIME
    refresh_token_idle_lifetime: int = 30 * 86400  # LATCHKEY_REFRESH_IDLE_LIFETIME
    refresh_token_absolute_lifetime: int = 90 * 86400  # LATCHKEY_REFRESH_ABSOLUTE_...
    # Default retry window of clients that set none (flask clients create/
    # update --refresh-grace-seconds); 0, as in Okta, Auth0, Hydra and
    # oidc-provider: a rotated-out refresh token coming back is reuse.
    refresh_grace_seconds: int = 0  # LATCHKEY_REFRESH_GRACE_SECONDS
    session_lifetime: int = 14 * 86400  # LATCHKEY_SESSION_LIFETIME
    signing_key_overlap: int = 7 * 86400  # LATCHKEY_SIGNING_KEY_OVERLAP
    # A rotated key is in the JWKS this long before it signs: longer than the
    # check interval plus JWKS_MAX_AGE (app/keys/ring.py).
    signing_key_prepublish: int = 120  # LATCHKEY_SIGNING_KEY_PREPUBLISH (s)
    # How often a process reads the key ring's version (seconds, may be 0.5).
    signing_key_check: float = 5.0  # LATCHKEY_SIGNING_KEY_CHECK_SECONDS
    # Retention (app/maintenance/retention.py): how long dead rows are kept
    # before `flask maintenance purge` deletes them.
    retention_days: int = 30  # LATCHKEY_RETENTION_DAYS
    event_retention_days: int = 365  # LATCHKEY_EVENT_RETENTION_DAYS
    # Rotated-out refresh tokens of live grants, kept for reuse detection.
    retention_rotated_refresh_hours: int = (
        24  # LATCHKEY_RETENTION_ROTATED_REFRESH_HOURS
    )
    # /metrics asks for "Authorization: Bearer <this>" when it is set.
    metrics_token: str = ""  # LATCHKEY_METRICS_TOKEN
    # Production needs Redis for rate limits unless this says, explicitly,
    # that each process may count on its own.
    ratelimit_per_process: bool = False  # LATCHKEY_RATELIMIT_PER_PROCESS
    password_time_cost: int = 2  # LATCHKEY_PASSWORD_TIME_COST
    password_memory_kib: int = 19 * 1024  # LATCHKEY_PASSWORD_MEMORY_KIB
    password_parallelism: int = 1  # LATCHKEY_PASSWORD_PARALLELISM
    max_body_bytes: int = 64 * 1024  # LATCHKEY_MAX_BODY_BYTES
    demo_data: bool = True  # LATCHKEY_DEMO_DATA (development only)
    reauth_max_age: int = 300  # LATCHKEY_REAUTH_MAX_AGE (s) before sign-out-all
    ratelimit_prefix: str = "latchkey"  # LATCHKEY_RATELIMIT_PREFIX
    # Rate limits (app/web/ratelimits.py), in Flask-Limiter's notation
    # ("10/10 minutes;100/day"); an empty value turns one limit off,
    # LATCHKEY_RATELIMIT_ENABLED=false all of them. Sign-in and 2FA limits
    # count failed attempts only; windows are minutes, so an attacker can
    # slow an account down but never lock its owner out for long.
    ratelimit_enabled: bool = True  # LATCHKEY_RATELIMIT_ENABLED
    ratelimit_limits: dict = field(default_factory=lambda: dict(RATE_LIMITS))
    # Process the outbox in a thread of `flask run` (production runs
    # `flask outbox run` as its own process).
    outbox_thread: bool = False  # LATCHKEY_OUTBOX_THREAD (on in development)
    # Cookies are per host, not per port: two providers on one host (an
    # upstream and a downstream) need different names.
    cookie_prefix: str = "lk"  # LATCHKEY_COOKIE_PREFIX
    # SQLite only. "full" syncs the write-ahead log to disk on every commit,
    # so a power cut loses nothing committed, but writers queue behind one
    # fsync each (bench/README.md: refresh and revocation). "normal" syncs
    # at checkpoints: a crash of the process still loses nothing, a power
    # cut or OS crash may lose the last commits (a revocation or rotation).
    sqlite_synchronous: str = "full"  # LATCHKEY_SQLITE_SYNCHRONOUS
    # PostgreSQL connection pool of each process (SQLAlchemy QueuePool);
    # docs/PRODUCTION.md "Connections: the arithmetic". SQLite keeps
    # SQLAlchemy's own pool for files and ignores these.
    db_pool_size: int = 10  # LATCHKEY_DB_POOL_SIZE
    db_max_overflow: int = 10  # LATCHKEY_DB_MAX_OVERFLOW
    db_pool_timeout: int = 30  # LATCHKEY_DB_POOL_TIMEOUT (s to wait for one)
    # JSON lines for a log collector, or text for a person at a terminal.
    log_format: str = "text"  # LATCHKEY_LOG_FORMAT: json | text (json in production)
    trusted_proxies: int = 0  # LATCHKEY_TRUSTED_PROXIES (hops setting X-Forwarded-For)
    providers_file: str = ""  # LATCHKEY_PROVIDERS_FILE (TOML or JSON)
    mail_backend: str = "files"  # LATCHKEY_MAIL_BACKEND: files | smtp
    mail_dir: str = ""  # LATCHKEY_MAIL_DIR (files backend; default instance/mail)
    mail_from: str = "Latchkey <no-reply@localhost>"  # LATCHKEY_MAIL_FROM
    smtp_host: str = "127.0.0.1"  # LATCHKEY_SMTP_HOST
    smtp_port: int = 25  # LATCHKEY_SMTP_PORT
    smtp_security: str = "none"  # LATCHKEY_SMTP_SECURITY: none | starttls | tls
    smtp_user: str = ""  # LATCHKEY_SMTP_USER
    smtp_password: str = ""  # LATCHKEY_SMTP_PASSWORD
    signup_enabled: bool = True  # LATCHKEY_SIGNUP (default on in development only)
    password_min_length: int = 8  # LATCHKEY_PASSWORD_MIN_LENGTH
    password_min_score: int = 3  # LATCHKEY_PASSWORD_MIN_SCORE (zxcvbn 0-4)
    reset_link_lifetime: int = 1800  # LATCHKEY_RESET_LINK_LIFETIME (s)
    # LATCHKEY_PROVIDER_* variables, where provider client secrets are read.
    provider_env: dict = field(default_factory=dict)

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


def load_settings(env=None, instance_path: str | None = None) -> Settings:
    """Read settings from ``env`` (default: os.environ) and check them.

    Development fills in missing secrets from a file under ``instance/`` so the
    trial needs no set-up; production raises ConfigError naming the setting.
    """
    env = dict(os.environ if env is None else env)
    mode = env.get("LATCHKEY_ENV", "development")
    if mode not in ("development", "production", "testing"):
        raise ConfigError(
            f"LATCHKEY_ENV must be development, production or testing, got {mode!r}"
        )
    s = Settings(env=mode)
    s.issuer = env.get("LATCHKEY_ISSUER", s.issuer).rstrip("/")
    s.database_url = env.get("LATCHKEY_DATABASE_URL", "")
    s.secret_key = env.get("LATCHKEY_SECRET_KEY", "")
    s.key_encryption_key = env.get("LATCHKEY_KEY_ENCRYPTION_KEY", "")
    s.redis_url = env.get("LATCHKEY_REDIS_URL", "")
    s.access_token_lifetime = _int(env, "LATCHKEY_ACCESS_TOKEN_LIFETIME", 600)
    s.id_token_lifetime = _int(env, "LATCHKEY_ID_TOKEN_LIFETIME", 600)
    s.access_token_alg = env.get("LATCHKEY_ACCESS_TOKEN_ALG", DEFAULT_ALG)
    if s.access_token_alg not in SUPPORTED_ALGS:
        raise ConfigError(
            f"LATCHKEY_ACCESS_TOKEN_ALG must be one of {', '.join(SUPPORTED_ALGS)}"
        )
    s.authorization_code_lifetime = _int(
        env, "LATCHKEY_AUTHORIZATION_CODE_LIFETIME", 60
    )
    s.refresh_token_idle_lifetime = _int(
        env, "LATCHKEY_REFRESH_IDLE_LIFETIME", s.refresh_token_idle_lifetime
    )
    s.refresh_token_absolute_lifetime = _int(
        env, "LATCHKEY_REFRESH_ABSOLUTE_LIFETIME", s.refresh_token_absolute_lifetime
    )
    s.refresh_grace_seconds = _int(env, "LATCHKEY_REFRESH_GRACE_SECONDS", 0)
    if not 0 <= s.refresh_grace_seconds <= MAX_REFRESH_GRACE_SECONDS:
        raise ConfigError(
            "LATCHKEY_REFRESH_GRACE_SECONDS must be 0 to "
            f"{MAX_REFRESH_GRACE_SECONDS} seconds"
        )
    s.session_lifetime = _int(env, "LATCHKEY_SESSION_LIFETIME", s.session_lifetime)
    s.signing_key_overlap = _int(
        env, "LATCHKEY_SIGNING_KEY_OVERLAP", s.signing_key_overlap
    )
    s.signing_key_prepublish = _int(
        env, "LATCHKEY_SIGNING_KEY_PREPUBLISH", s.signing_key_prepublish
    )
    s.signing_key_check = _float(
        env, "LATCHKEY_SIGNING_KEY_CHECK_SECONDS", s.signing_key_check
    )
    if s.signing_key_check < 0 or s.signing_key_prepublish < 0:
        raise ConfigError("LATCHKEY_SIGNING_KEY_* must not be negative")
    s.retention_days = _int(env, "LATCHKEY_RETENTION_DAYS", s.retention_days)
    s.event_retention_days = _int(
        env, "LATCHKEY_EVENT_RETENTION_DAYS", s.event_retention_days
    )
    s.retention_rotated_refresh_hours = _int(
        env,
        "LATCHKEY_RETENTION_ROTATED_REFRESH_HOURS",
        s.retention_rotated_refresh_hours,
    )
    if min(s.retention_days, s.event_retention_days) < 1:
        raise ConfigError("LATCHKEY_RETENTION_DAYS / _EVENT_ must be at least 1")
    if s.retention_rotated_refresh_hours < 1:
        raise ConfigError("LATCHKEY_RETENTION_ROTATED_REFRESH_HOURS must be >= 1")
    s.metrics_token = env.get("LATCHKEY_METRICS_TOKEN", "")
    s.ratelimit_per_process = _bool(env, "LATCHKEY_RATELIMIT_PER_PROCESS", False)
    s.password_time_cost = _int(env, "LATCHKEY_PASSWORD_TIME_COST", 2)
    s.password_memory_kib = _int(env, "LATCHKEY_PASSWORD_MEMORY_KIB", 19 * 1024)
    s.password_parallelism = _int(env, "LATCHKEY_PASSWORD_PARALLELISM", 1)
    s.max_body_bytes = _int(env, "LATCHKEY_MAX_BODY_BYTES", 64 * 1024)
    s.demo_data = _bool(env, "LATCHKEY_DEMO_DATA", mode == "development")
    s.reauth_max_age = _int(env, "LATCHKEY_REAUTH_MAX_AGE", 300)
    s.ratelimit_prefix = env.get("LATCHKEY_RATELIMIT_PREFIX", "latchkey")
    s.ratelimit_enabled = _bool(env, "LATCHKEY_RATELIMIT_ENABLED", True)
    s.ratelimit_limits = _rate_limits(env)
    s.outbox_thread = _bool(env, "LATCHKEY_OUTBOX_THREAD", mode == "development")
    s.cookie_prefix = env.get("LATCHKEY_COOKIE_PREFIX", "lk")
    s.sqlite_synchronous = env.get("LATCHKEY_SQLITE_SYNCHRONOUS", "full").lower()
    if s.sqlite_synchronous not in ("full", "normal"):
        raise ConfigError("LATCHKEY_SQLITE_SYNCHRONOUS must be full or normal")
    s.db_pool_size = _int(env, "LATCHKEY_DB_POOL_SIZE", s.db_pool_size)
    s.db_max_overflow = _int(env, "LATCHKEY_DB_MAX_OVERFLOW", s.db_max_overflow)
    s.db_pool_timeout = _int(env, "LATCHKEY_DB_POOL_TIMEOUT", s.db_pool_timeout)
    if s.db_pool_size < 1:
        # SQLAlchemy reads pool_size 0 as "no limit", which would break the
        # connection arithmetic this setting exists for.
        raise ConfigError("LATCHKEY_DB_POOL_SIZE must be at least 1")
    s.log_format = env.get(
        "LATCHKEY_LOG_FORMAT", "json" if mode == "production" else "text"
    ).lower()
    if s.log_format not in ("json", "text"):
        raise ConfigError("LATCHKEY_LOG_FORMAT must be json or text")
    s.trusted_proxies = _int(env, "LATCHKEY_TRUSTED_PROXIES", 0)
    if not 0 <= s.trusted_proxies <= 5:
        raise ConfigError("LATCHKEY_TRUSTED_PROXIES must be 0 to 5")
    if not s.cookie_prefix.isidentifier():
        raise ConfigError("LATCHKEY_COOKIE_PREFIX must be letters, digits or _")
    s.providers_file = env.get("LATCHKEY_PROVIDERS_FILE", "")
    s.mail_backend = env.get(
        "LATCHKEY_MAIL_BACKEND", "smtp" if mode == "production" else "files"
    )
    if s.mail_backend not in ("files", "smtp"):
        raise ConfigError("LATCHKEY_MAIL_BACKEND must be files or smtp")
    s.mail_dir = env.get("LATCHKEY_MAIL_DIR", "")
    s.mail_from = env.get("LATCHKEY_MAIL_FROM", s.mail_from)
    s.smtp_host = env.get("LATCHKEY_SMTP_HOST", s.smtp_host)
    s.smtp_port = _int(env, "LATCHKEY_SMTP_PORT", 25)
    s.smtp_security = env.get("LATCHKEY_SMTP_SECURITY", "none")
    if s.smtp_security not in ("none", "starttls", "tls"):
        raise ConfigError("LATCHKEY_SMTP_SECURITY must be none, starttls or tls")
    s.smtp_user = env.get("LATCHKEY_SMTP_USER", "")
    s.smtp_password = env.get("LATCHKEY_SMTP_PASSWORD", "")
    s.signup_enabled = _bool(env, "LATCHKEY_SIGNUP", mode != "production")
    s.password_min_length = _int(env, "LATCHKEY_PASSWORD_MIN_LENGTH", 8)
    s.password_min_score = _int(env, "LATCHKEY_PASSWORD_MIN_SCORE", 3)
    s.reset_link_lifetime = _int(env, "LATCHKEY_RESET_LINK_LIFETIME", 1800)
    s.provider_env = {
        k: v for k, v in env.items() if k.startswith("LATCHKEY_PROVIDER_")
    }

    if s.access_token_lifetime <= 0 or s.access_token_lifetime > 600:
        raise ConfigError("LATCHKEY_ACCESS_TOKEN_LIFETIME must be 1..600 seconds")
    problem = issuer_problem(s.issuer)
    if problem:
        raise ConfigError(f"LATCHKEY_ISSUER {problem}, got {s.issuer!r}")
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
    if not s.secret_key or s.secret_key.startswith(DEV_SECRET_MARKER):
        problems.append("LATCHKEY_SECRET_KEY is missing or a development value")
    elif len(s.secret_key) < 32:
        problems.append("LATCHKEY_SECRET_KEY must be at least 32 characters")
    if not s.key_encryption_key:
        problems.append("LATCHKEY_KEY_ENCRYPTION_KEY is missing")
    issuer = urlparse(s.issuer)
    if issuer.scheme != "https" and issuer.hostname not in ("localhost", "127.0.0.1"):
        problems.append(f"LATCHKEY_ISSUER must use https, got {s.issuer!r}")
    if not s.database_url:
        problems.append("LATCHKEY_DATABASE_URL is missing")
    if s.demo_data:
        problems.append("LATCHKEY_DEMO_DATA cannot be on in production")
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
    secrets_file = base / "dev-secrets.json"
    stored = {}
    if secrets_file.exists():
        stored = json.loads(secrets_file.read_text())
    else:
        base.mkdir(parents=True, exist_ok=True)
        stored = {
            "secret_key": DEV_SECRET_MARKER + secrets.token_urlsafe(32),
            "key_encryption_key": base64.urlsafe_b64encode(
                secrets.token_bytes(32)
            ).decode(),
        }
        secrets_file.write_text(json.dumps(stored))
        secrets_file.chmod(0o600)
    s.secret_key = s.secret_key or stored["secret_key"]
    s.key_encryption_key = s.key_encryption_key or stored["key_encryption_key"]
