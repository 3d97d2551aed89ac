"""Cross-cutting web concerns: error answers and security headers."""

import logging

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Machine endpoints answer errors in JSON; people get a page.
_API_PREFIXES = (
    "/token",
    "/revoke",
    "/introspect",
    "/userinfo",
    "/device_authorization",
    "/.well-known",
    "/jwks.json",
)


def _wants_json() -> bool:
    return request.path.startswith(_API_PREFIXES)


def register_error_handlers(app):
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if _wants_json():
            error = "invalid_request" if exc.code < 500 else "server_error"
            response = jsonify({"error": error, "error_description": exc.name})
            response.status_code = exc.code
            return response
        return render_template(
            "errors/generic.html", title=exc.name, message=exc.description
        ), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        from app.extensions import db

        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            response = jsonify({"error": "server_error"})
            response.status_code = 500
            return response
        return render_template(
            "errors/generic.html",
            title="Something went wrong",
            message="Please try again in a moment.",
        ), 500


def security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    )
    if request.path in ("/login", "/authorize", "/token", "/userinfo"):
        response.headers["Cache-Control"] = "no-store"
    return response


def register_health(app):
    @app.route("/healthz")
    def healthz():
        from sqlalchemy import text

        from app.extensions import db

        db.session.execute(text("SELECT 1"))
        return {"status": "ok"}
