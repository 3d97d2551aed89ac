"""The truth about a token: is it live right now?

Reads the database on every call (by primary key), so a revocation is
visible to the very next request in any process. No cache can lie.
"""

from sqlalchemy import select

from app.extensions import db
from app.models import Account, Client, Device, Grant, RefreshToken, RevokedAccessToken
from app.models.base import utcnow
from app.oauth.keys import InvalidJWT, KeyRing
from app.revocation.services import grant_is_live
from app.security.tokens import hash_token


class TokenInspector:
    def __init__(self, keys: KeyRing, issuer: str):
        self.keys = keys
        self.issuer = issuer

    def access_token_claims(self, token: str) -> dict | None:
        """Claims of a live access token we issued, else None."""
        try:
            claims = self.keys.verify(token, typ="at+jwt")
        except InvalidJWT:
            return None
        now = utcnow().timestamp()
        if claims.get("iss") != self.issuer or not isinstance(claims.get("exp"), int):
            return None
        if claims["exp"] <= now:
            return None
        if db.session.get(RevokedAccessToken, str(claims.get("jti"))) is not None:
            return None
        if "gid" in claims:
            row = db.session.execute(
                select(Grant, Account, Device)
                .join(Account, Account.id == Grant.account_id)
                .join(Device, Device.id == Grant.device_id)
                .where(Grant.id == str(claims["gid"]))
            ).first()
            if row is None or not grant_is_live(*row):
                return None
        elif db.session.get(Client, str(claims.get("client_id"))) is None:
            return None
        return claims

    def refresh_token_record(self, token: str):
        """(RefreshToken, Grant) if ``token`` is the live refresh token of a
        live grant, else None."""
        if not token or len(token) > 200:
            return None
        row = db.session.execute(
            select(RefreshToken, Grant, Account, Device)
            .join(Grant, Grant.id == RefreshToken.grant_id)
            .join(Account, Account.id == Grant.account_id)
            .join(Device, Device.id == Grant.device_id)
            .where(RefreshToken.token_hash == hash_token(token))
        ).first()
        if row is None:
            return None
        refresh, grant, account, device = row
        if refresh.seq != grant.live_seq or not grant_is_live(grant, account, device):
            return None
        return refresh, grant
