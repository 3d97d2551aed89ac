"""Account: a person, and the counter that cuts off everything they hold."""

import enum
from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, new_id, utcnow


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class Account(db.Model):
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

    @property
    def is_active(self) -> bool:
        return self.status == AccountStatus.ACTIVE

    def get_user_id(self) -> str:
        return self.id
