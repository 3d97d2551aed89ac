"""DeviceCode: one pending device authorization (RFC 8628)."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.base import AuthContext, UTCDateTime, utcnow


class DeviceCodeStatus:
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"


class DeviceCode(AuthContext, Model):
    __tablename__ = "device_codes"
    # The auth context is filled in when a signed-in person approves.
    auth_context_optional = True
    device_id_indexed = False

    # SHA-256 of the 256-bit device_code the client polls with.
    device_code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SHA-256 of the normalised user code (letters only, upper case).
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE")
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    device_name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=DeviceCodeStatus.PENDING)
    interval: Mapped[int] = mapped_column(Integer, default=5)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
