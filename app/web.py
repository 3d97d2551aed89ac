"""Cross-cutting web concerns: error answers and security headers."""

import logging

from flask import jsonify, make_response, render_template, request
from sqlalchemy.exc import DataError
from werkzeug.exceptions import BadRequest, HTTPException

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


# RFC 8628 §3.5: a polling device knows to back off on slow_down.
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def form_expired():
    """The answer to a form post that fails validation (its CSRF token is
    checked before the view, by CSRFProtect)."""
    return render_template(
        "errors/generic.html",
        title="Form expired",
        message="Please go back and try again.",
    ), 400


def register_error_handlers(app):
    @app.errorhandler(429)
    def too_many_requests(exc: HTTPException):
        """A rate limit refused the request: JSON for machines, a page for
        people, and Retry-After for both (RFC 6585 §4)."""
        from app.security.ratelimits import retry_after_seconds

        seconds = retry_after_seconds()
        if _wants_json():
            slow = request.form.get("grant_type") == _DEVICE_GRANT
            response = jsonify(
                error="slow_down" if slow else "too_many_requests",
                error_description=f"Too many requests; retry in {seconds} seconds.",
            )
        else:
            response = make_response(
                render_template(
                    "errors/too_many_requests.html", minutes=-(-seconds // 60)
                )
            )
        response.status_code = 429
        response.headers["Retry-After"] = str(seconds)
        response.headers["Cache-Control"] = "no-store"
        return response

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

    @app.errorhandler(DataError)
    def unstorable_value(exc: DataError):
        # A value the database cannot hold (PostgreSQL refuses NUL bytes in
        # text) came from the request: bad input, answered as such wherever
        # it arrives, instead of a check per field.
        from app.extensions import db

        db.session.rollback()
        route = request.url_rule.rule if request.url_rule else "(no route)"
        log.warning("unstorable value refused on %s %s", request.method, route)
        return http_error(BadRequest("A value in the request cannot be stored."))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        from app.extensions import db

        db.session.rollback()
        # The route's pattern, not the path: paths carry single-use tokens
        # (/password/reset/<token>), which must not reach the logs.
        route = request.url_rule.rule if request.url_rule else "(no route)"
        log.exception("unhandled error on %s %s", request.method, route)
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
