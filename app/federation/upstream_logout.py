"""Back-channel logout from an upstream provider (OIDC Back-Channel Logout
1.0 §2.6): a provider that ends a session tells us, and we end the Latchkey
sessions that were signed in through it."""

import time

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select

from app.cutoff.services import end_session
from app.extensions import db
from app.federation.providers import Provider
from app.models import BrowserSession, SessionEnd
from app.security.jose import UntrustedJWTRejected, checked_header

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY_SECONDS = 120


class InvalidLogoutToken(Exception):
    """The logout token fails one of the checks of §2.6."""


def validate_logout_token(provider: Provider, client, token: str) -> dict:
    """The claims of a valid logout token from ``provider``; raises
    InvalidLogoutToken. ``client`` is the provider's Authlib client, which
    holds its discovery document and JWKS."""
    metadata = client.load_server_metadata()
    algorithms = upstream_algorithms(metadata)
    try:
        # The header's members are typed before joserfc picks a key by them.
        checked_header(token, algorithms)
    except UntrustedJWTRejected as exc:
        raise InvalidLogoutToken(str(exc)) from exc
    try:
        decoded = _decode(token, _keys(client), algorithms)
    except JoseError:
        # The provider may have rotated its keys since we last fetched them.
        decoded = _decode(token, _keys(client, force=True), algorithms, last=True)
    claims, header = decoded.claims, decoded.header
    typ = header.get("typ")
    if typ is not None and typ.lower() not in ("logout+jwt", "jwt"):
        raise InvalidLogoutToken("typ")  # §2.4: never an ID token
    now = time.time()
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    checks = {
        "iss": claims.get("iss") == provider.issuer,
        "aud": provider.client_id in audiences,
        "iat": isinstance(claims.get("iat"), int | float),
        "exp": not isinstance(claims.get("exp"), int | float)
        or claims["exp"] + LEEWAY_SECONDS > now,
        "events": isinstance(claims.get("events"), dict)
        and BACKCHANNEL_EVENT in claims["events"],
        "sub/sid": bool(claims.get("sub") or claims.get("sid")),
        "nonce": "nonce" not in claims,  # §2.4: a nonce means an ID token
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise InvalidLogoutToken(", ".join(failed))
    return claims


def upstream_algorithms(metadata: dict) -> list[str]:
    """The signing algorithms the provider's discovery document names (OIDC
    Discovery §3; RS256 when it names none), strings only and never none."""
    named = metadata.get("id_token_signing_alg_values_supported")
    if not isinstance(named, list):
        named = ["RS256"]
    return [a for a in named if isinstance(a, str) and a.lower() != "none"]


def _keys(client, force=False) -> KeySet:
    # A provider whose JWKS cannot be fetched or read is unavailable (the
    # view answers 503 so that it retries), not the token's fault.
    return KeySet.import_key_set(client.fetch_jwk_set(force=force))


def _decode(token: str, keys: KeySet, algorithms: list[str], last=False):
    """Signature-checked token; a JoseError (on the first try only) means
    "try again with fresh keys"; any other failure is the token's."""
    try:
        return jwt.decode(token, keys, algorithms=algorithms)
    except JoseError as exc:
        if not last:
            raise
        raise InvalidLogoutToken("signature") from exc
    except (ValueError, TypeError) as exc:
        raise InvalidLogoutToken("malformed") from exc


def end_upstream_sessions(provider: Provider, claims: dict) -> list[tuple[str, str]]:
    """End the live sessions that signed in through the upstream session (or,
    with only ``sub``, every session of that upstream subject).

    Returns (account id, sid) of each session ended.
    """
    query = select(BrowserSession.account_id, BrowserSession.sid).where(
        BrowserSession.upstream_provider == provider.slug,
        BrowserSession.ended_at.is_(None),
    )
    if claims.get("sub"):
        query = query.where(BrowserSession.upstream_subject == str(claims["sub"]))
    if claims.get("sid"):
        query = query.where(BrowserSession.upstream_sid == str(claims["sid"]))
    rows = db.session.execute(query).all()
    return [
        (account_id, sid)
        for account_id, sid in rows
        if end_session(sid, SessionEnd.UPSTREAM_LOGOUT)
    ]
