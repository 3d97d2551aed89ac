"""Client: a relying party or resource server registered with Latchkey."""

import hmac
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.base import UTCDateTime, utcnow
from app.models.key import DEFAULT_ALG
from app.security.opaque_tokens import hash_token

LOOPBACK_IP_LITERALS = ("127.0.0.1", "[::1]")


def _loopback_parts(uri: str):
    """(host, path, query) of an ``http`` loopback IP-literal URI with a
    valid (or no) port and nothing else odd, else None."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return None
    host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    # urlsplit lowercases the scheme; RFC 8252 §7.3 allows only "http".
    if not uri.startswith("http://") or host not in LOOPBACK_IP_LITERALS:
        return None
    if parts.fragment or "@" in parts.netloc or parts.netloc.endswith(":"):
        return None
    return host, parts.path, parts.query


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Whether a requested redirect URI matches a registered one.

    Exact string comparison (RFC 9700 §4.1.3), except that for ``http`` on
    a loopback IP literal (127.0.0.1 or [::1], not ``localhost``) any port
    is allowed (RFC 8252 §7.3, §8.3); scheme, host, path and query must
    still be identical.
    """
    if requested == registered:
        return True
    ours, theirs = _loopback_parts(registered), _loopback_parts(requested)
    return ours is not None and ours == theirs


class Client(Model):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of a 256-bit random secret; None for public clients.
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(32), default="client_secret_basic"
    )
    # OIDC Dynamic Client Registration §2: RS256 when the client names none.
    id_token_signed_response_alg: Mapped[str] = mapped_column(
        String(8), default=DEFAULT_ALG
    )
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    pkce_exempt: Mapped[bool] = mapped_column(Boolean, default=False)
    may_introspect: Mapped[bool] = mapped_column(Boolean, default=False)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(
        String(2000), nullable=True
    )
    # Seconds in which a retry of the refresh token just rotated gets the same
    # successor again (app/oauth/refresh.py); None: LATCHKEY_REFRESH_GRACE_SECONDS.
    refresh_grace_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    # The methods Authlib's authorization server calls on a client (its
    # rfc6749.ClientMixin interface), duck-typed: only app/oauth/ imports
    # Authlib, and the server never checks the base class.
    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # OAuth 2.1 / RFC 9700: never guess; the request must name its URI
        # unless exactly one is registered.
        if len(self.redirect_uris) == 1:
            return self.redirect_uris[0]
        return None

    def get_allowed_scope(self, scope):
        if not scope:
            return " ".join(self.scopes)
        allowed = set(self.scopes)
        return " ".join(s for s in str(scope).split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        # RFC 9700 §4.1.3: exact string match, no patterns, no prefixes;
        # save RFC 8252 §7.3's port rule for loopback IP literals.
        return any(
            redirect_uri_matches(registered, redirect_uri)
            for registered in self.redirect_uris
        )

    def check_client_secret(self, client_secret):
        if self.secret_hash is None or not client_secret:
            return False
        return hmac.compare_digest(self.secret_hash, hash_token(client_secret))

    def check_endpoint_auth_method(self, method, endpoint):
        if endpoint == "token":
            return method == self.token_endpoint_auth_method or (
                # a confidential client may pick basic or post
                self.token_endpoint_auth_method != "none"
                and method in ("client_secret_basic", "client_secret_post")
            )
        return method != "none" or self.is_public

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


class ClientRegistry(Model):
    """One row (id 1) whose ``generation`` (32 random hex digits) database
    triggers renew on every change to ``clients``, in the transaction of
    the change (migration 0009). A process that keeps clients in memory
    reads it to know whether what it keeps is still what the table holds
    (app/clients/cache.py)."""

    __tablename__ = "client_registry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[str] = mapped_column(String(32))
