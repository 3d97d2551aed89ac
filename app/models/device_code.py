"""DeviceCode: one pending device authorization (RFC 8628)."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.base import UTCDateTime, utcnow


class DeviceCodeStatus:
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"


class DeviceCode(Model):
    __tablename__ = "device_codes"

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
    # Filled in when a signed-in person approves or denies.
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    account_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    device_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), nullable=True
    )
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    acr: Mapped[str] = mapped_column(String(64), default="0")
