"""Issuing tokens: JWT access tokens (RFC 9068), ID tokens, grants and their
first refresh token. No Flask request objects here: the Authlib wiring in
server.py passes in what it knows."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from authlib.oauth2.rfc6749.util import scope_to_list

from app.extensions import db
from app.keys.ring import DEFAULT_ALG, KeyRing
from app.models import Account, Client, Grant, RefreshToken
from app.models.base import new_id, utcnow
from app.security.opaque_tokens import hash_token, new_token


@dataclass
class Subject:
    """The person (and how and where they signed in) tokens are issued for.

    Authlib hands this object around as its "user"; ``grant`` is None until the
    token generator creates the grant for a fresh authorization.
    """

    account: Account
    device_id: str
    session_sid: str | None
    auth_time: datetime
    amr: list[str] = field(default_factory=list)
    acr: str = "0"
    grant: Grant | None = None
    refresh_token: str | None = None
    nonce: str | None = None

    def get_user_id(self) -> str:
        return self.account.id


def is_session_bound(session_sid: str | None, scope: str) -> bool:
    """A grant made in a browser session ends with it unless the person let
    the client stay signed in (OIDC Core §11: offline_access asks for access
    "even when the End-User is not logged in")."""
    scopes = scope_to_list(scope) or []
    return session_sid is not None and "offline_access" not in scopes


def half_hash(value: str, alg: str) -> str:
    """OIDC Core §3.1.3.6 at_hash: left half of the hash, base64url."""
    digest = hashlib.sha256(value.encode()).digest()  # ES256 and RS256 use SHA-256
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


# OIDC Core §5.4: the claims each scope releases (discovery's claims_supported
# is read from here and ID_TOKEN_CLAIMS).
SCOPE_CLAIMS = {"profile": ("name",), "email": ("email", "email_verified")}
# OIDC Core §2 and §3.1.3.6, Back-Channel Logout §2.1 (sid): what id_token() sets.
ID_TOKEN_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "acr",
    "sid",
    "at_hash",
)
# OIDC Core §8: sub is the account id, the same for every client.
SUBJECT_TYPES = ("public",)


def user_claims(account: Account, scope: str) -> dict:
    """Claims about the person released for ``scope`` (OIDC Core §5.4)."""
    scopes = set(scope_to_list(scope) or [])
    claims: dict = {"sub": account.id}
    if "profile" in scopes:
        claims["name"] = account.name
    if "email" in scopes:
        claims["email"] = account.email
        claims["email_verified"] = bool(account.email_verified)
    return claims


class TokenIssuer:
    """Makes grants, refresh tokens, access tokens and ID tokens."""

    def __init__(
        self,
        keys: KeyRing,
        issuer: str,
        access_lifetime: int,
        id_token_lifetime: int,
        access_token_alg: str = DEFAULT_ALG,
    ):
        self.keys = keys
        self.issuer = issuer
        self.access_lifetime = access_lifetime
        self.id_token_lifetime = id_token_lifetime
        self.access_token_alg = access_token_alg

    # -- grants ------------------------------------------------------------
    def create_grant(
        self, subject: Subject, client: Client, scope: str, with_refresh: bool
    ) -> Grant:
        """Add a grant (and its first refresh token) to the session."""
        now = utcnow()
        grant = Grant(
            id=new_id(),
            account_id=subject.account.id,
            client_id=client.client_id,
            device_id=subject.device_id,
            session_sid=subject.session_sid,
            session_bound=is_session_bound(subject.session_sid, scope),
            scope=scope,
            account_generation=subject.account.generation,
            auth_time=subject.auth_time,
            amr=subject.amr,
            acr=subject.acr,
            created_at=now,
            live_seq=0,
            seq_counter=0,
            last_refresh_at=now,
        )
        db.session.add(grant)
        subject.grant = grant
        if with_refresh:
            subject.refresh_token = new_token()
            db.session.add(
                RefreshToken(
                    token_hash=hash_token(subject.refresh_token),
                    grant_id=grant.id,
                    seq=0,
                    created_at=now,
                )
            )
        return grant

    # -- JWTs --------------------------------------------------------------
    def access_token(
        self, client: Client, scope: str, subject: Subject | None
    ) -> tuple[str, int]:
        """A signed RFC 9068 access token and its lifetime in seconds."""
        now = int(utcnow().timestamp())
        claims = {
            "iss": self.issuer,
            "aud": client.client_id,
            "client_id": client.client_id,
            "iat": now,
            "exp": now + self.access_lifetime,
            "jti": new_id(),
            "scope": scope,
        }
        if subject is None:
            # RFC 9068 §2.2: with no resource owner, sub names the client.
            claims["sub"] = client.client_id
        else:
            if subject.grant is None:  # create_grant sets it; gid names it
                raise ValueError("an access token for a person needs its grant")
            claims.update(
                sub=subject.account.id,
                auth_time=int(subject.auth_time.timestamp()),
                acr=subject.acr,
                amr=subject.amr,
                gid=subject.grant.id,
                did=subject.device_id,
            )
            if subject.session_sid:
                claims["sid"] = subject.session_sid
        # RFC 9068 §2.1: RS256 unless LATCHKEY_ACCESS_TOKEN_ALG says otherwise.
        token = self.keys.sign(claims, self.access_token_alg, typ="at+jwt")
        return token, self.access_lifetime

    def id_token(
        self, client: Client, subject: Subject, scope: str, access_token: str | None
    ) -> str:
        alg = client.id_token_signed_response_alg or DEFAULT_ALG
        now = int(utcnow().timestamp())
        claims = {
            **user_claims(subject.account, scope),
            "iss": self.issuer,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + self.id_token_lifetime,
            "auth_time": int(subject.auth_time.timestamp()),
            "amr": subject.amr,
            "acr": subject.acr,
        }
        if subject.session_sid:
            claims["sid"] = subject.session_sid
        if subject.nonce:
            claims["nonce"] = subject.nonce
        if access_token:
            claims["at_hash"] = half_hash(access_token, alg)
        return self.keys.sign(claims, alg)

    def token_response(
        self, client: Client, scope: str, subject: Subject | None
    ) -> dict:
        access, lifetime = self.access_token(client, scope, subject)
        token = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": lifetime,
            "scope": scope,
        }
        if subject is not None and subject.refresh_token:
            token["refresh_token"] = subject.refresh_token
        return token
