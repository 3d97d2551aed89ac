"""The token endpoint's rate limit: failed requests per client.

Keyed by the client_id the request names (HTTP Basic or the form), checked
before the client is authenticated, so guessing a client's secret or
replaying dead codes and refresh tokens is slowed per client. Only failures
count, and a success costs the store nothing (a lazy limit): a busy client
is never limited for working.
A request fails when the authorization server answers it with an OAuth
error (``token_request_failed``, called from its error handler).
"""

from urllib.parse import unquote

from flask import request

from app.web.ratelimits import failed_attempt, failure_limit

# RFC 8628 §3.5: a device polling before the person decided is not failing.
POLLING_ERRORS = {"authorization_pending", "slow_down"}


def client_id_key() -> str:
    """The client_id from HTTP Basic (RFC 6749 §2.3.1: form-encoded) or the
    form; "-" when the request names none."""
    client_id = ""
    try:
        authorization = request.authorization
    except ValueError:  # Werkzeug chokes on non-ASCII Basic credentials
        authorization = None
    if authorization is not None and authorization.type == "basic":
        client_id = unquote(authorization.username or "")
    client_id = client_id or request.form.get("client_id", "")
    return client_id[:64] or "-"


def token_request_failed(error: str) -> None:
    """The request was answered with the OAuth error ``error`` (RFC 6749
    §5.2): a failure under the per-client limit, unless it is a device
    polling for the person's decision. Only /token carries the limit, so
    the mark is read by nobody on the other endpoints."""
    if error not in POLLING_ERRORS:
        failed_attempt(TOKEN_CLIENT)


TOKEN_CLIENT = "token_client"
# Lazy: successful grants do not touch Redis (app/web/ratelimits.py).
token_client_limit = failure_limit(TOKEN_CLIENT, client_id_key, lazy=True)
