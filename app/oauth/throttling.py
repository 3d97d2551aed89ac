"""The token endpoint's rate limit: failed requests per client.

Keyed by the client_id the request names (HTTP Basic or the form), checked
before the client is authenticated, so guessing a client's secret or
replaying dead codes and refresh tokens is slowed per client. Successful
requests give their unit back: a busy client is never limited for working.
"""

from urllib.parse import unquote

from flask import Response, request

from app.web.ratelimits import failure_limit

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


def _failed(response: Response) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code != 400:
        return False
    body = response.get_json(silent=True) or {}
    return body.get("error") not in POLLING_ERRORS


token_client_limit = failure_limit("token_client", client_id_key, _failed)
