"""Client registration: secrets are shown once and stored as SHA-256."""

import secrets
from urllib.parse import urlparse

from sqlalchemy import select

from app.config import MAX_REFRESH_GRACE_SECONDS
from app.extensions import db
from app.keys.ring import DEFAULT_ALG, SUPPORTED_ALGS
from app.models import Client
from app.security.opaque_tokens import hash_token, new_token

GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code",
)


class InvalidClientMetadata(ValueError):
    """A registration value is not acceptable; the message says which."""


MAX_URI_CHARS = 2000  # the width of the columns that hold them


# OIDC Core §5.4 standard scopes, plus offline_access (§11) for refresh tokens
# that outlive the browser session.
SCOPES_SUPPORTED = ["openid", "profile", "email", "offline_access"]


def _check_uri_text(uri, what: str) -> None:
    # RFC 3986 §2: no spaces or control characters in a URI, ever.
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
        raise InvalidClientMetadata(f"{what} must be 1 to {MAX_URI_CHARS} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in uri):
        raise InvalidClientMetadata(f"{what} must not contain spaces: {uri!r}")


def _check_backchannel_logout_uri(uri: str, production: bool) -> None:
    """Back-Channel Logout §2.2: an absolute http(s) URL without a fragment
    (https in production: the logout token is a bearer credential)."""
    what = "back-channel logout URI"
    _check_uri_text(uri, what)
    parsed = urlparse(uri)
    schemes = ("https",) if production else ("http", "https")
    if parsed.scheme not in schemes or not parsed.hostname:
        raise InvalidClientMetadata(
            f"{what} must be an absolute {' or '.join(schemes)} URL: {uri}"
        )
    if parsed.fragment or uri.endswith("#"):
        raise InvalidClientMetadata(f"{what} must not have a fragment: {uri}")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        raise InvalidClientMetadata(f"{what} has an invalid port: {uri}") from exc


def _check_redirect_uri(uri: str) -> None:
    _check_uri_text(uri, "redirect URI")
    parsed = urlparse(uri)
    if parsed.fragment or uri.endswith("#"):
        raise InvalidClientMetadata(f"redirect URI must not have a fragment: {uri}")
    if parsed.scheme == "https" and parsed.netloc:
        return
    if parsed.scheme == "http" and parsed.hostname in (
        "127.0.0.1",
        "localhost",
        "[::1]",
        "::1",
    ):
        return  # RFC 8252 §7.3 loopback redirects for native apps
    if parsed.scheme not in ("http", "https", "javascript", "data", "file", "") and (
        "." in parsed.scheme
    ):
        return  # RFC 8252 §7.1 private-use scheme, e.g. com.example.app:/cb
    raise InvalidClientMetadata(
        f"redirect URI must be https, http on loopback, or a reverse-domain "
        f"private scheme: {uri}"
    )


def _check_id_token_alg(alg: str) -> None:
    # OIDC Dynamic Client Registration §2: one of the algorithms discovery
    # lists in id_token_signing_alg_values_supported.
    if alg not in SUPPORTED_ALGS:
        raise InvalidClientMetadata(
            f"id token algorithm must be one of {', '.join(SUPPORTED_ALGS)}"
        )


def create_client(
    name: str,
    redirect_uris=(),
    public=False,
    grant_types=None,
    scopes=None,
    first_party=False,
    pkce_exempt=False,
    may_introspect=False,
    id_token_alg=DEFAULT_ALG,
    backchannel_logout_uri=None,
    post_logout_redirect_uris=(),
    client_id=None,
    refresh_grace_seconds=None,
    production=False,
) -> tuple[Client, str | None]:
    """Register a client. Returns (client, secret or None).

    Raises InvalidClientMetadata naming the first unacceptable value;
    ``production`` requires https where the specifications say SHOULD.
    ``refresh_grace_seconds`` None leaves the client on the server's
    default (LATCHKEY_REFRESH_GRACE_SECONDS).
    """
    _check_refresh_grace(refresh_grace_seconds)
    if not name:
        raise InvalidClientMetadata("a client needs a name")
    grant_types = list(grant_types or ["authorization_code", "refresh_token"])
    for g in grant_types:
        if g not in GRANT_TYPES:
            raise InvalidClientMetadata(f"unknown grant type: {g}")
    if public and "client_credentials" in grant_types:
        raise InvalidClientMetadata("a public client cannot use client_credentials")
    if public and pkce_exempt:
        raise InvalidClientMetadata("a public client cannot be exempt from PKCE")
    scopes = list(scopes or SCOPES_SUPPORTED)
    for s in scopes:
        if s not in SCOPES_SUPPORTED:
            raise InvalidClientMetadata(f"unknown scope: {s}")
    _check_id_token_alg(id_token_alg)
    redirect_uris = list(redirect_uris)
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidClientMetadata("authorization_code needs a redirect URI")
    for uri in redirect_uris + list(post_logout_redirect_uris):
        _check_redirect_uri(uri)
    if backchannel_logout_uri is not None:
        _check_backchannel_logout_uri(backchannel_logout_uri, production)
    # Hex, not URL-safe base64: an id that starts with "-" reads as an
    # option to every command line that is given it (flask clients show …).
    client_id = client_id or secrets.token_hex(16)
    if db.session.get(Client, client_id) is not None:
        raise InvalidClientMetadata(f"client id already taken: {client_id}")
    secret = None if public else new_token()
    client = Client(
        client_id=client_id,
        name=name,
        secret_hash=hash_token(secret) if secret else None,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        grant_types=grant_types,
        scopes=scopes,
        token_endpoint_auth_method="none" if public else "client_secret_basic",
        id_token_signed_response_alg=id_token_alg,
        first_party=first_party,
        pkce_exempt=pkce_exempt,
        may_introspect=may_introspect,
        backchannel_logout_uri=backchannel_logout_uri,
        refresh_grace_seconds=refresh_grace_seconds,
    )
    db.session.add(client)
    db.session.flush()  # its defaults set, for the caller to show
    return client, secret


def _check_refresh_grace(seconds) -> None:
    if seconds is None:
        return
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not 0 <= seconds <= MAX_REFRESH_GRACE_SECONDS
    ):
        raise InvalidClientMetadata(
            f"refresh grace must be 0 to {MAX_REFRESH_GRACE_SECONDS} seconds"
        )


UNSET = object()


def update_client(client_id: str, refresh_grace_seconds=UNSET) -> Client:
    """Change a registered client's settings; a setting not
    passed is left as it is (``refresh_grace_seconds=None`` goes back to
    the server's default). Raises InvalidClientMetadata, LookupError."""
    client = db.session.get(Client, client_id)
    if client is None:
        raise LookupError(client_id)
    if refresh_grace_seconds is not UNSET:
        _check_refresh_grace(refresh_grace_seconds)
        client.refresh_grace_seconds = refresh_grace_seconds
    return client


def set_id_token_alg(client_id: str, alg: str) -> Client:
    """Change a client's id_token_signed_response_alg.

    Raises InvalidClientMetadata for an unknown client or algorithm. Clients
    registered before RS256 became the default keep ES256 until this is run.
    """
    _check_id_token_alg(alg)
    client = db.session.get(Client, client_id)
    if client is None:
        raise InvalidClientMetadata(f"no client with id {client_id}")
    client.id_token_signed_response_alg = alg
    return client


def list_clients() -> list[Client]:
    return list(
        db.session.execute(select(Client).order_by(Client.created_at)).scalars()
    )


def delete_client(client_id: str) -> bool:
    """Delete a client; its grants, codes and tokens go with it (cascade)."""
    client = db.session.get(Client, client_id)
    if client is None:
        return False
    db.session.delete(client)
    return True


def client_as_dict(client: Client) -> dict:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "scopes": client.scopes,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "first_party": client.first_party,
        "pkce_exempt": client.pkce_exempt,
        "may_introspect": client.may_introspect,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        # None: the server's LATCHKEY_REFRESH_GRACE_SECONDS.
        "refresh_grace_seconds": client.refresh_grace_seconds,
        "created_at": client.created_at.isoformat(),
    }
