"""OIDC RP-Initiated Logout 1.0: checking an end-session request before
anything is ended or anyone is redirected."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from app.extensions import db
from app.keys.ring import InvalidJWT, KeyRing
from app.models import Client

MAX_PARAM_CHARS = 2000


class InvalidLogoutRequest(Exception):
    """The request cannot be trusted; ``error`` is a short code for the
    page, and nobody is redirected anywhere."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass
class LogoutRequest:
    """A checked end-session request."""

    client: Client | None = None
    post_logout_redirect_uri: str | None = None
    state: str | None = None
    hint: dict | None = None  # verified id_token_hint claims

    def hint_matches(self, sid: str, account_id: str) -> bool:
        """Whether the id_token_hint was issued for this very session."""
        return bool(
            self.hint
            and self.hint.get("sid") == sid
            and self.hint.get("sub") == account_id
        )

    def redirect_target(self) -> str | None:
        """Where to send the browser afterwards, with ``state`` echoed
        (RP-Initiated Logout §3), or None to show our own page."""
        uri = self.post_logout_redirect_uri
        if not uri:
            return None
        if not self.state:
            return uri
        sep = "&" if urlsplit(uri).query else "?"
        return uri + sep + urlencode({"state": self.state})


def _param(params, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_PARAM_CHARS:
        raise InvalidLogoutRequest("invalid_request", f"{name} is too long.")
    return value


def check_logout_request(params, keys: KeyRing, issuer: str) -> LogoutRequest:
    """Check the parameters of an end-session request (a mapping of the GET
    query or the POST form). Raises InvalidLogoutRequest."""
    hint_token = _param(params, "id_token_hint")
    client_id = _param(params, "client_id")
    redirect_uri = _param(params, "post_logout_redirect_uri")
    request = LogoutRequest(state=_param(params, "state"))
    if hint_token:
        request.hint = _verify_hint(hint_token, keys, issuer)
        hinted_client = _audience(request.hint)
        # RP-Initiated Logout §2: with both, client_id MUST be the ID token's.
        if client_id is not None and client_id != hinted_client:
            raise InvalidLogoutRequest(
                "invalid_request", "client_id does not match the id_token_hint."
            )
        client_id = hinted_client
    if client_id is not None:
        request.client = db.session.get(Client, client_id)
        if request.client is None:
            raise InvalidLogoutRequest("invalid_client", "Unknown client.")
    if redirect_uri is not None:
        if request.client is None:
            # RP-Initiated Logout §3: a redirect URI can only be checked
            # against a known client's registration.
            raise InvalidLogoutRequest(
                "invalid_request",
                "post_logout_redirect_uri needs client_id or id_token_hint.",
            )
        # RP-Initiated Logout §3: exact match with a registered value, or no
        # redirection at all. RFC 8252 §7.3's any-port rule for loopback is
        # about authorization requests' redirect URIs, so it is not applied.
        if redirect_uri not in (request.client.post_logout_redirect_uris or []):
            raise InvalidLogoutRequest(
                "invalid_request",
                "post_logout_redirect_uri is not registered for this client.",
            )
        request.post_logout_redirect_uri = redirect_uri
    return request


def _verify_hint(token: str, keys: KeyRing, issuer: str) -> dict:
    try:
        # An ID token (typ JWT), not an access or logout token.
        claims = keys.verify(token, typ="jwt")
    except InvalidJWT as exc:
        raise InvalidLogoutRequest(
            "invalid_request", "The id_token_hint is not valid."
        ) from exc
    # RP-Initiated Logout §2: the OP MUST check it issued the ID token; it
    # SHOULD accept one whose exp has passed, so exp is not checked.
    if claims.get("iss") != issuer or not claims.get("sub"):
        raise InvalidLogoutRequest(
            "invalid_request", "The id_token_hint was not issued here."
        )
    return claims


def _audience(claims: dict) -> str:
    aud = claims.get("aud")
    if isinstance(aud, list):
        # OIDC Core §2: with several audiences, azp names the client.
        azp = claims.get("azp")
        aud = aud[0] if len(aud) == 1 else azp if azp in aud else None
    if not isinstance(aud, str) or not aud:
        raise InvalidLogoutRequest(
            "invalid_request", "The id_token_hint names no client."
        )
    return aud
