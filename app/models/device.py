"""Device (a browser, app or TV a person signed in from) and its sessions."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.base import AuthContext, UTCDateTime, new_id, utcnow


class DeviceKind:
    BROWSER = "browser"
    APP = "app"
    TV = "tv"


class Device(Model):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # SHA-256 of the long-lived device cookie (browsers only).
    cookie_hash: Mapped[str | None] = mapped_column(
        String(64), unique=True, nullable=True
    )
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default=DeviceKind.BROWSER)
    name: Mapped[str] = mapped_column(String(200), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_ip: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SessionEnd:
    """Why a browser session ended (sessions.end_cause)."""

    LOGOUT = "logout"  # the person signed out here (/logout)
    RP_LOGOUT = "rp_logout"  # RP-Initiated Logout at /logout/end
    EXPIRED = "expired"  # its lifetime ran out (the expiry sweep)
    DEVICE_SIGNED_OUT = "device_signed_out"
    UPSTREAM_LOGOUT = "upstream_logout"  # the upstream provider's back-channel
    REPLACED = "replaced"  # a new sign-in in the same browser
    ACCOUNT_SIGNED_OUT = "account_signed_out"  # found cut off by generation


class BrowserSession(AuthContext, Model):
    """The signed-in state of one browser; the cookie holds a random id."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_upstream", "upstream_provider", "upstream_subject"),
        # The expiry sweep reads only sessions not yet marked ended.
        Index(
            "ix_sessions_unended_expiry",
            "expires_at",
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
    )

    # SHA-256 of the cookie value; the cookie itself is never stored.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Public session id for OIDC ``sid`` claims and back-channel logout.
    sid: Mapped[str] = mapped_column(String(32), unique=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Why it ended (SessionEnd) and, for an RP-initiated logout, which client
    # asked: shown on the devices page and in the security history.
    end_cause: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ended_by_client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # For a federated sign-in: the upstream session it rode on, so that the
    # provider's back-channel logout can end it.
    upstream_provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    upstream_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    upstream_sid: Mapped[str | None] = mapped_column(String(255), nullable=True)


def describe_user_agent(ua: str) -> str:
    """A short human name for a browser, e.g. 'Chrome on Linux'."""
    browser = next(
        (
            name
            for key, name in (
                ("Edg/", "Edge"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
            )
            if key in ua
        ),
        "Browser",
    )
    system = next(
        (
            name
            for key, name in (
                ("Android", "Android"),
                ("iPhone", "iOS"),
                ("iPad", "iPadOS"),
                ("Windows", "Windows"),
                ("Mac OS", "macOS"),
                ("Linux", "Linux"),
            )
            if key in ua
        ),
        None,
    )
    return f"{browser} on {system}" if system else browser
