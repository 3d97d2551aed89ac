"""The truth about a token: is it live right now?

Reads the database on every call (by primary key), so a revocation is
visible to the very next request in any process. No cache can lie.
"""

from datetime import timedelta
from functools import cache

from sqlalchemy import Select, bindparam, select

from app.cutoff.liveness import is_live, with_context
from app.extensions import db
from app.keys.ring import InvalidJWT, KeyRing
from app.models import Client, Grant, RefreshToken, RevokedAccessToken
from app.models.base import utcnow
from app.oauth.refresh import refresh_token_statement
from app.security.opaque_tokens import hash_token


@cache
def _grant_token_statement() -> Select:
    """A grant token's grant, its context (is_live's rows), whether its jti
    was revoked on its own (RFC 7009), and the key ring's version: one
    statement, built once (its SQL and cache key are then reused; building
    it per call was ~10% of an introspection's CPU)."""
    return (
        with_context(Grant, RevokedAccessToken.jti, KeyRing.version_column())
        .outerjoin(RevokedAccessToken, RevokedAccessToken.jti == bindparam("jti"))
        .where(Grant.id == bindparam("gid"))
    )


@cache
def _client_token_statement() -> Select:
    """The same for a client_credentials token (no grant): its client."""
    return (
        select(Client.client_id, RevokedAccessToken.jti, KeyRing.version_column())
        .outerjoin(RevokedAccessToken, RevokedAccessToken.jti == bindparam("jti"))
        .where(Client.client_id == bindparam("client_id"))
    )


class TokenInspector:
    def __init__(self, keys: KeyRing, issuer: str):
        self.keys = keys
        self.issuer = issuer

    def access_token_claims(self, token: str) -> dict | None:
        """Claims of a live access token we issued, else None."""
        try:
            claims, kid = self.keys.verify_with_kid(token, typ="at+jwt")
        except InvalidJWT:
            return None
        return self.live_claims(claims, kid)

    def live_claims(self, claims: dict, kid: str) -> dict | None:
        """``claims`` of an access token whose signature the caller has
        already checked with key ``kid``, if it is ours and live now (and
        the key not revoked meanwhile), else None. Spares a second ECDSA
        verification on the introspection path."""
        now = utcnow().timestamp()
        if claims.get("iss") != self.issuer or not isinstance(claims.get("exp"), int):
            return None
        if claims["exp"] <= now:
            return None
        # One statement, one round trip: the grant (or client) and whether
        # this jti was revoked on its own (RFC 7009), by primary keys. The
        # key ring's version rides along: a key revoked in another process
        # a moment ago fails here, at no extra round trip. A grant's session
        # comes in the same statement (by its unique sid): a session-bound
        # grant dies with its session.
        jti = str(claims.get("jti"))
        if "gid" in claims:
            row = db.session.execute(
                _grant_token_statement(), {"jti": jti, "gid": str(claims["gid"])}
            ).first()
            if row is None or row[4] is not None or not is_live(*row[:4]):
                return None
        else:
            row = db.session.execute(
                _client_token_statement(),
                {"jti": jti, "client_id": str(claims.get("client_id"))},
            ).first()
            if row is None or row[1] is not None:
                return None
        if not self.keys.still_valid(kid, row[-1]):
            return None
        return claims

    def refresh_token_record(self, token: str):
        """(RefreshToken, Grant) if ``token`` is the live refresh token of a
        live grant, else None."""
        if not token or len(token) > 200:
            return None
        row = db.session.execute(
            refresh_token_statement(), {"token_hash": hash_token(token)}
        ).first()
        if row is None:
            return None
        grant, account, device, session, refresh = row
        if refresh.seq != grant.live_seq or not is_live(
            grant, account, device, session
        ):
            return None
        return refresh, grant


ACCESS, REFRESH = "access_token", "refresh_token"
INACTIVE = {"active": False}


def hint_order(hint: str | None) -> tuple[str, str]:
    # RFC 7009 §2.1 / RFC 7662 §2.1: the hint orders the search, it is not
    # trusted; an unknown hint value is ignored.
    return (REFRESH, ACCESS) if hint == REFRESH else (ACCESS, REFRESH)


def describe_token(
    inspector: TokenInspector, token: str, hint: str | None, caller: Client, settings
) -> dict:
    """RFC 7662 answer for ``token`` asked by ``caller``: the token's
    description, or ``{"active": False}``.

    A client that is not a resource server (may_introspect) learns only
    about tokens issued to it. RFC 7662 §2.2: a token the caller may not
    know about is described as inactive, exactly like an unknown one, so
    the answer tells it nothing (no error, no other field).
    """
    for kind in hint_order(hint):
        found = (_describe_access if kind == ACCESS else _describe_refresh)(
            inspector, token, settings
        )
        if found is None:
            continue
        owner, answer = found
        if not caller.may_introspect and owner != caller.client_id:
            return dict(INACTIVE)
        return answer
    return dict(INACTIVE)


def _describe_access(inspector: TokenInspector, token: str, settings):
    try:
        claims, kid = inspector.keys.verify_with_kid(token, typ="at+jwt")
    except InvalidJWT:
        return None
    if claims.get("iss") != inspector.issuer:
        return None  # another issuer's token: not ours to describe
    owner = claims.get("client_id")
    if inspector.live_claims(claims, kid) is None:
        return owner, {"active": False}
    answer = {
        "active": True,
        # RFC 7662 §2.2: token_type as in RFC 6749 §5.1, what /token said.
        "token_type": "Bearer",
        **{
            k: claims[k]
            for k in (
                "scope",
                "client_id",
                "sub",
                "exp",
                "iat",
                "iss",
                "aud",
                "jti",
                "sid",
                "auth_time",
                "acr",
                "amr",
            )
            if k in claims
        },
    }
    if "did" in claims:
        answer["device_id"] = claims["did"]
    return owner, answer


def _describe_refresh(inspector: TokenInspector, token: str, settings):
    if not token or len(token) > 200:
        return None
    row = db.session.execute(
        select(RefreshToken, Grant)
        .join(Grant, Grant.id == RefreshToken.grant_id)
        .where(RefreshToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    refresh, grant = row
    owner = grant.client_id
    live = inspector.refresh_token_record(token)
    if live is None:
        return owner, {"active": False}
    expires_at = grant.refresh_expires_at(
        timedelta(seconds=settings.refresh_token_idle_lifetime),
        timedelta(seconds=settings.refresh_token_absolute_lifetime),
    )
    now = utcnow().timestamp()
    exp = int(expires_at.timestamp())
    if exp <= now:
        return owner, {"active": False}
    return owner, {
        "active": True,
        "token_type": "refresh_token",
        "scope": grant.scope,
        "client_id": grant.client_id,
        "sub": grant.account_id,
        "exp": exp,
        "iat": int(refresh.created_at.timestamp()),
        "iss": inspector.issuer,
        "aud": grant.client_id,
        "device_id": grant.device_id,
    }
