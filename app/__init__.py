"""Latchkey: an OAuth 2.0 / OpenID Connect identity provider."""

from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import load_settings
from app.extensions import csrf, db, limiter, migrate
from app.logout.backchannel import HANDLERS as LOGOUT_HANDLERS
from app.mail.services import HANDLERS as MAIL_HANDLERS
from app.outbox.services import outbox_status, register_handlers
from app.sqlite_writers import QueuedWriterConnection
from app.unit_of_work import UnitOfWorkFlask, init_unit_of_work
from app.web.ratelimits import init_rate_limits
from app.wiring import Services


def create_app(config: dict | None = None) -> UnitOfWorkFlask:
    """Build the app. ``config`` maps LATCHKEY_* names to values and, when
    given, replaces the environment (tests pass their own)."""
    app = UnitOfWorkFlask(
        __name__,
        template_folder="../templates",
        static_folder="../static",
        instance_relative_config=True,
    )
    settings = load_settings(config, instance_path=app.instance_path)
    app.config.update(
        LATCHKEY=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_NAME=f"{settings.cookie_prefix}_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer.startswith("https://"),
        TESTING=settings.env == "testing",
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX=settings.ratelimit_prefix,
        # No X-RateLimit-* headers (a draft, not a standard): each cost a
        # Redis round trip on every limited request, ~10% of a /token
        # request's time in the profile (bench/profiles/after-issue10-*).
        # A refused request still says when to come back: Retry-After on
        # the 429 (RFC 6585 §4), from app/web/common.py.
        RATELIMIT_HEADERS_ENABLED=False,
        # Redis away: count in this process instead of failing every sign-in.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
    )
    db.init_app(app)
    _enable_sqlite_foreign_keys(app)
    migrate.init_app(app, db, directory=_migrations_dir())
    csrf.init_app(app)
    limiter.init_app(app)
    init_rate_limits(app)
    services = Services.build(app, settings)
    app.extensions["latchkey"] = services
    register_handlers(app, {**MAIL_HANDLERS, **LOGOUT_HANDLERS})

    from app.cli import register_cli
    from app.metrics import init_metrics
    from app.oauth.endpoints import bp as oauth_api_bp
    from app.oauth.views import bp as oauth_bp
    from app.web.accounts.history_views import bp as history_bp
    from app.web.accounts.lifecycle_views import bp as lifecycle_bp
    from app.web.accounts.password_views import bp as passwords_bp
    from app.web.accounts.reauth_views import bp as reauth_bp
    from app.web.accounts.signup_views import bp as signup_bp
    from app.web.accounts.twofactor_views import bp as twofactor_bp
    from app.web.accounts.views import bp as accounts_bp
    from app.web.apps.views import bp as apps_bp
    from app.web.common import (
        page_context,
        refuse_repeated_parameters,
        register_error_handlers,
        relative_time,
        security_headers,
    )
    from app.web.devices.views import bp as devices_bp
    from app.web.federation.views import bp as federation_bp
    from app.web.logout.views import bp as logout_bp
    from app.web.logs import init_request_logging
    from app.web.probes import register_probes
    from app.web.sessions import CookieSessionInterface, apply_queued_cookies

    app.session_interface = CookieSessionInterface()

    app.register_blueprint(accounts_bp)
    app.register_blueprint(passwords_bp)
    app.register_blueprint(signup_bp)
    app.register_blueprint(twofactor_bp)
    app.register_blueprint(lifecycle_bp)
    app.register_blueprint(history_bp)
    app.register_blueprint(oauth_bp)
    app.register_blueprint(oauth_api_bp)
    app.register_blueprint(devices_bp)
    app.register_blueprint(apps_bp)
    app.register_blueprint(reauth_bp)
    if settings.demo_data:
        from app.web.demo.views import bp as demo_bp

        app.register_blueprint(demo_bp)
    app.register_blueprint(federation_bp)
    app.register_blueprint(logout_bp)
    app.before_request(refuse_repeated_parameters)
    app.after_request(apply_queued_cookies)
    app.after_request(security_headers)
    app.context_processor(page_context)
    app.add_template_filter(relative_time, "ago")
    register_error_handlers(app)
    register_probes(app)
    init_metrics(app, outbox_status)
    init_request_logging(app, settings.log_format)
    register_cli(app)
    # Read from the URL map, so only once every blueprint is registered.
    from app.oauth.discovery import build_discovery

    services.discovery_json = build_discovery(app, services)
    # Flask's documented way to add WSGI middleware replaces the method.
    from app.oauth.documents import PublishedDocuments

    app.wsgi_app = PublishedDocuments(app, app.wsgi_app)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        # Behind a load balancer the client's address is in X-Forwarded-For;
        # trust exactly as many hops as the operator says, no more. Outermost,
        # so that what answers below Flask logs that address too.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
        )
    if settings.outbox_thread and not app.testing:
        from app.background import install_dev_worker

        install_dev_worker(app)
    # Last, so that Flask runs it before every other after_request hook.
    init_unit_of_work(app)
    return app


def _engine_options(settings) -> dict:
    if settings.database_url.startswith("sqlite"):
        # Several processes share one file in the trial and the tests; their
        # writers queue in app/sqlite_writers.py rather than in SQLite's
        # sleeping busy handler, which stays behind it with this timeout.
        return {"connect_args": {"timeout": 30, "factory": QueuedWriterConnection}}
    # No pool_pre_ping: it costs a round trip at the start of every request.
    # After a database restart the first statement on a stale connection
    # fails (that one request answers 500) and SQLAlchemy then discards the
    # whole pool, so the process recovers by itself on the next request.
    # Connections per process: pool_size + max_overflow (LATCHKEY_DB_*,
    # docs/PRODUCTION.md has the arithmetic against max_connections).
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
    }


def _enable_sqlite_foreign_keys(app: UnitOfWorkFlask) -> None:
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():
        engine = db.engine

    synchronous = app.config["LATCHKEY"].sqlite_synchronous.upper()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL or NORMAL only, checked in load_settings (not user input).
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()


def _migrations_dir() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "migrations")
