"""Grant (account x client x device x scope), its refresh tokens and codes."""

from datetime import datetime, timedelta

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.base import AuthContext, UTCDateTime, new_id, utcnow


class Grant(AuthContext, Model):
    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    session_sid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Made in a browser session without offline_access: live only while the
    # session named by session_sid is (OIDC Core §11, Back-Channel Logout
    # §2.7). An offline_access grant outlives its session, not its device.
    session_bound: Mapped[bool] = mapped_column(Boolean, default=False)
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Refresh rotation state. The live refresh token is the one whose seq
    # equals live_seq; rotation is a conditional UPDATE on live_seq, so two
    # processes can never both rotate the same token.
    live_seq: Mapped[int] = mapped_column(Integer, default=0)
    live_parent_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seq_counter: Mapped[int] = mapped_column(Integer, default=0)
    last_refresh_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def refresh_expires_at(self, idle: timedelta, absolute: timedelta) -> datetime:
        """When the grant's refresh token stops being accepted: ``idle`` after
        the last rotation or ``absolute`` after the grant was made, whichever
        comes first (LATCHKEY_REFRESH_IDLE_LIFETIME and
        LATCHKEY_REFRESH_ABSOLUTE_LIFETIME). The one place this is computed:
        rotation refuses a token after it, introspection reports it as the
        refresh token's ``exp`` (RFC 7662 §2.2)."""
        return min(self.created_at + absolute, self.last_refresh_at + idle)


class RefreshToken(Model):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("grants.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthorizationCode(AuthContext, Model):
    __tablename__ = "authorization_codes"
    device_id_indexed = False

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE")
    )
    session_sid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # As sent to /authorize; None when it was not sent (RFC 6749 §4.1.3:
    # then /token need not send it either).
    redirect_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(8), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The grant this code created, so that a replay can revoke it (RFC 6749 §4.1.2).
    grant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Consent(Model):
    """Scopes a person has agreed to give a client; asked again for new ones."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("account_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE")
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE")
    )
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _code_mixin_methods(cls):
    """Authlib's AuthorizationCodeMixin / OIDC / PKCE accessors."""
    cls.get_redirect_uri = lambda self: self.redirect_uri
    cls.get_scope = lambda self: self.scope
    cls.get_nonce = lambda self: self.nonce
    cls.get_auth_time = lambda self: int(self.auth_time.timestamp())
    cls.get_acr = lambda self: self.acr
    cls.get_amr = lambda self: self.amr
    return cls


_code_mixin_methods(AuthorizationCode)
