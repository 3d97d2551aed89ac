"""Authorization request parameters Authlib does not check: the ones our
discovery document says are unsupported, and the numbers and values that
decide whether the person must sign in again (OIDC Core §3.1.2.1).

Each check runs once the client and redirect URI are trusted, so its
error goes back to the client (RFC 6749 §4.1.2.1).
"""

from dataclasses import dataclass

from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import (
    RegistrationNotSupportedError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)

# OIDC Core §3.1.2.1: the prompt values authorize() acts on; discovery's
# prompt_values_supported is this list (Initiating User Registration §4.2).
PROMPT_VALUES = ("none", "login", "consent")
# OIDC Core §6 and §7.2.1: parameters we do not support, each with its own
# error code (§3.1.2.6), so a request object is never silently dropped
# along with the state and nonce it carries.
UNSUPPORTED_PARAMETERS: dict[str, type[OAuth2Error]] = {
    "request": RequestNotSupportedError,
    "request_uri": RequestURINotSupportedError,
    "registration": RegistrationNotSupportedError,
}
MAX_AGE_DIGITS = 10  # more than 300 years of seconds


@dataclass(frozen=True)
class Freshness:
    """What the request asks about the age of the sign-in."""

    prompts: frozenset[str]
    max_age: int | None

    @property
    def forces_login(self) -> bool:
        """prompt=login or max_age=0: only a sign-in made for this very
        request will do."""
        return "login" in self.prompts or self.max_age == 0


def check_authorization_params(
    params, redirect_uri: str, response_modes: tuple[str, ...]
) -> Freshness:
    """Refuse what we do not support; parse prompt and max_age.

    ``params`` is the request's parameters (query or form);
    ``response_modes`` the grant's (discovery advertises the same). Raises an
    OAuth2Error carrying ``redirect_uri``. The ``claims`` parameter is
    accepted and ignored: OIDC Core §5.5.1 forbids an error for requested
    claims that are not returned, so refusing it would be stricter than
    the specification and break relying parties that only hope for claims.
    """
    for name, error in UNSUPPORTED_PARAMETERS.items():
        if params.get(name):  # RFC 6749 §3.1: an empty value is no value
            raise error(redirect_uri=redirect_uri)
    mode = params.get("response_mode")
    if mode and mode not in response_modes:
        # RFC 6749 §4.1.2.1: invalid_request covers an unsupported value.
        raise InvalidRequestError(
            "response_mode is not supported.", redirect_uri=redirect_uri
        )
    return Freshness(_prompts(params, redirect_uri), _max_age(params, redirect_uri))


def _prompts(params, redirect_uri: str) -> frozenset[str]:
    prompts = frozenset((params.get("prompt") or "").split())
    if not prompts <= set(PROMPT_VALUES):
        raise InvalidRequestError(
            "prompt has a value that is not supported.", redirect_uri=redirect_uri
        )
    if "none" in prompts and len(prompts) > 1:
        # OIDC Core §3.1.2.1: none with any other value is an error.
        raise InvalidRequestError(
            "prompt=none cannot be combined with other values.",
            redirect_uri=redirect_uri,
        )
    return prompts


def _max_age(params, redirect_uri: str) -> int | None:
    raw = params.get("max_age")
    if raw is None or raw == "":
        return None
    # OIDC Core §3.1.2.1: a number of seconds, so a non-negative integer;
    # int() would also take "-1", " 5" and "1_000".
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_AGE_DIGITS:
        raise InvalidRequestError(
            "max_age must be a non-negative integer.", redirect_uri=redirect_uri
        )
    return int(raw)
