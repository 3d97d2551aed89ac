"""Account: a person, and the counter that cuts off everything they hold."""

import enum
from datetime import datetime

from sqlalchemy import Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.base import UTCDateTime, new_id, utcnow


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    # A tombstone: personal data removed, the row kept so that ids in the
    # security-event log still point somewhere. Like every status but
    # ACTIVE, it authenticates nothing (checks compare with ACTIVE).
    DELETED = "deleted"


class Account(Model):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.ACTIVE)
    # Every session, grant and code records the generation it was made in;
    # bumping it cuts all of them off with one row update (DESIGN.md).
    generation: Mapped[int] = mapped_column(Integer, default=0)
    email_verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )
    # Set by an operator after a breach: sign-in still works, but no token is
    # issued until the person has chosen a new password.
    must_reset_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # TOTP secret, AES-GCM under the KEK; the last accepted time step, so a
    # code cannot be replayed.
    totp_secret_encrypted: Mapped[bytes | None] = mapped_column(
        LargeBinary, nullable=True
    )
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def is_active(self) -> bool:
        return self.status == AccountStatus.ACTIVE

    @property
    def has_totp(self) -> bool:
        return self.totp_enabled_at is not None

    def get_user_id(self) -> str:
        return self.id
