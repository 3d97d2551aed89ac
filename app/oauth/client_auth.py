"""Which one client authentication method a request uses (RFC 6749 §2.3).

Authlib's ClientAuthentication tries each allowed method in turn, so a
wrong HTTP Basic secret "falls through" to a right secret in the body.
Here the request names its method by what it carries, carrying two is an
error, and only the named method is then tried: a wrong credential fails.
"""

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization

BASIC, POST, NONE = "client_secret_basic", "client_secret_post", "none"
# RFC 6749 §3.2: parameters sent without a value are treated as omitted, and
# none may be included more than once.
_CREDENTIAL_PARAMS = ("client_id", "client_secret")


def presented_method(request) -> str:
    """The authentication method ``request`` (an Authlib OAuth2Request) uses:
    ``client_secret_basic``, ``client_secret_post`` or ``none``.

    Raises InvalidRequestError (400) when the request uses more than one
    method (RFC 6749 §2.3), repeats a credential parameter (§3.2), puts the
    secret in the URI (§2.3.1), or names a client in the body other than
    the one HTTP Basic authenticates.
    """
    for name in _CREDENTIAL_PARAMS:
        if len(request.payload.datalist.get(name, [])) > 1:
            raise InvalidRequestError(f"Multiple '{name}' in request.")
    # RFC 6749 §2.3.1: the secret MUST NOT be included in the request URI.
    if "client_secret" in request.args:
        raise InvalidRequestError("client_secret must not be sent in the URI.")
    basic = _uses_basic(request.headers.get("Authorization"))
    in_body = "client_secret" in request.form
    if basic and in_body:
        # RFC 6749 §2.3: MUST NOT use more than one method in each request.
        raise InvalidRequestError(
            "The client used more than one authentication method."
        )
    if not basic:
        return POST if in_body else NONE
    try:
        basic_id, _secret = extract_basic_authorization(request.headers)
    except ValueError:  # not UTF-8; authentication itself fails below
        basic_id = None
    named = request.payload.data.get("client_id")
    if named and basic_id is not None and named != basic_id:
        raise InvalidRequestError(
            "client_id differs from the client authenticated with HTTP Basic."
        )
    return BASIC


def _uses_basic(header: str | None) -> bool:
    if not header:
        return False
    return header.split(None, 1)[0].lower() == "basic"


def only_presented(request, methods) -> list[str]:
    """``[method]`` the request presents, if the endpoint allows it.

    Raises InvalidRequestError (see presented_method) or InvalidClientError
    when the endpoint does not accept that method.
    """
    method = presented_method(request)
    if method not in methods:
        raise InvalidClientError(
            status_code=401,
            description="Client authentication failed.",
        )
    return [method]
