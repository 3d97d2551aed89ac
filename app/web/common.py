"""Cross-cutting web concerns: error answers and security headers."""

import logging
from datetime import datetime

from flask import (
    current_app,
    has_request_context,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, SQLAlchemyError
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


HSTS_MAX_AGE = 365 * 86400

# RFC 8628 §3.5: a polling device knows to back off on slow_down.
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def form_expired():
    """The answer to a form post that fails validation, or whose CSRF token
    CSRFProtect refused before the view: a page in plain words, 400."""
    return render_template(
        "errors/generic.html",
        title="This form has expired",
        message=(
            "For your safety, a form only works in the browser tab that "
            "showed it, with cookies on. Go back, reload the page and try again."
        ),
    ), 400


# What people see for the HTTP errors they can meet, in plain words.
PLAIN_ERRORS = {
    400: ("Something in that request was not right", "Go back and try again."),
    404: (
        "Page not found",
        "There is nothing at this address. Check the link, or start again "
        "from your account page.",
    ),
    405: (
        "That did not work",
        "This page cannot be used that way. Go back and try again.",
    ),
    413: ("That was too much", "What you sent is too large. Try something smaller."),
}


# The one navigation bar of signed-in pages: (endpoint, label), and the
# other pages that belong under each entry (marked as current there too).
NAV_ITEMS = (
    ("accounts.home", "Account"),
    ("devices.devices", "Devices"),
    ("apps.apps", "Apps"),
    ("history.security", "Security history"),
)
NAV_SECTIONS = {
    "accounts.home": (
        "passwords.change",
        "signup.change_email",
        "twofactor.overview",
        "twofactor.setup",
        "twofactor.disable",
        "lifecycle.deactivate",
        "lifecycle.delete",
        "accounts.profile",
    ),
    "devices.devices": (
        "devices.confirm_sign_out_device",
        "devices.confirm_sign_out_all",
        "devices.link",
    ),
    "apps.apps": ("apps.confirm_remove",),
}


def page_context() -> dict:
    """What every page template may use: who is signed in (for the
    navigation bar) and the bar's entries."""
    from app.web.sessions import load_current_session

    if not has_request_context():
        return {}
    try:
        signed_in = load_current_session()
    except SQLAlchemyError:  # an error page must render with the database away
        signed_in = None
    return {
        "signed_in": signed_in,
        "nav_items": NAV_ITEMS,
        "nav_sections": NAV_SECTIONS,
    }


def relative_time(at: datetime, now: datetime | None = None) -> str:
    """``at`` as people say it: "just now", "5 minutes ago", "yesterday",
    "3 days ago", or the date when it is more than a month old."""
    from app.models.base import utcnow

    seconds = ((now or utcnow()) - at).total_seconds()
    if seconds < 60:
        return "just now"
    for limit, unit_seconds, unit in ((3600, 60, "minute"), (86400, 3600, "hour")):
        if seconds < limit:
            count = int(seconds // unit_seconds)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    days = int(seconds // 86400)
    if days == 1:
        return "yesterday"
    if days < 31:
        return f"{days} days ago"
    return f"on {at.strftime('%d %b %Y')}"


def register_error_handlers(app):
    @app.errorhandler(429)
    def too_many_requests(exc: HTTPException):
        """A rate limit refused the request: JSON for machines, a page for
        people, and Retry-After for both (RFC 6585 §4)."""
        from app.web.ratelimits import retry_after_seconds

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

    @app.errorhandler(CSRFError)
    def form_token_refused(exc: CSRFError):
        # Flask-WTF's own words ("The CSRF session token is missing") mean
        # nothing to a person; the usual cause is an old tab or blocked cookies.
        return form_expired()

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Our own raises carry a sentence written for people ("A parameter
        # was sent more than once."); Werkzeug's stock descriptions do not.
        own = exc.description != type(exc).description
        code = exc.code or 500  # a bare HTTPException has none
        if _wants_json():
            error = "invalid_request" if code < 500 else "server_error"
            description = exc.description if own else exc.name
            response = jsonify({"error": error, "error_description": description})
            response.status_code = code
            return response
        title, message = PLAIN_ERRORS.get(code, (exc.name, exc.description or ""))
        if own:
            message = exc.description or ""
        return render_template(
            "errors/generic.html", title=title, message=message
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


_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def refuse_repeated_parameters():
    """before_request: a parameter sent more than once is bad input.

    RFC 6749 §3.1 and §3.2: request parameters MUST NOT be included more
    than once, and a repeated one is ``invalid_request`` (§4.1.2.1, §5.2).
    No Latchkey page has two fields of one name either, so the rule holds
    for every route, counting the query and the form body together: which
    copy a view would read must never be a question.
    """
    req = request._get_current_object()
    # Werkzeug parses a body into request.form for these two types only;
    # asking for any other's (a GET's, a JSON body's) would parse nothing.
    sources = [req.args] if req.query_string else []
    if req.mimetype in _FORM_TYPES:
        sources.append(req.form)
    counts: dict[str, int] = {}
    for source in sources:
        for name, values in source.lists():
            counts[name] = counts.get(name, 0) + len(values)
    if any(count > 1 for count in counts.values()):
        raise BadRequest("A parameter was sent more than once.")


SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    # Styles come only from our own stylesheet (static/latchkey.css).
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
)
_SECURITY_HEADERS_LOWERED = tuple((n.lower(), n, v) for n, v in SECURITY_HEADERS)
# The answers that carry a secret of their own (a code page, a token).
_NO_STORE_PATHS = frozenset({"/login", "/authorize", "/token", "/userinfo"})


def security_headers(response):
    """after_request hook: the headers every answer carries, unless the view
    set its own."""
    headers = response.headers
    # One pass over the headers, not a case-insensitive scan per name
    # (Werkzeug's setdefault also raised and caught a KeyError for each
    # missing one): this runs for every request.
    present = set(headers.keys(lower=True))
    for lowered, name, value in _SECURITY_HEADERS_LOWERED:
        if lowered not in present:
            headers.add(name, value)
    if request.path in _NO_STORE_PATHS:
        headers["Cache-Control"] = "no-store"
    hsts = strict_transport_security(current_app.config["LATCHKEY"])
    if hsts and "strict-transport-security" not in present:
        headers["Strict-Transport-Security"] = hsts
    return response


def strict_transport_security(settings) -> str | None:
    """The Strict-Transport-Security value every answer carries, or None
    where none is sent (outside production, or an http:// issuer).

    RFC 6797 §6.1: browsers that met us over https never try plain http
    again for a year (§8.1: a header seen over http is ignored, so a proxy
    that ends TLS may pass it on as it is). No includeSubDomains: the
    operator's other hosts are not ours to pin."""
    if settings.is_production and settings.issuer.startswith("https://"):
        return f"max-age={HSTS_MAX_AGE}"
    return None
