"""Column helpers shared by the tables (``AuthContext``), and ``claim_once``."""

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Update
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

from app.extensions import db, rowcount


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class AuthContext:
    """The columns shared by everything that acts as a signed-in person:
    browser sessions, authorization codes, grants and device codes. Whose
    it is, the account generation it was made in and the device it lives
    on (the liveness rule, app.cutoff.liveness, compares all three), and
    how the person authenticated (OIDC Core §2: ``auth_time``, ``amr``,
    ``acr``), carried into what is issued from it.

    Each column is a ``declared_attr``, so every table gets its own (a
    ForeignKey cannot be shared), shaped by two class settings: a device
    code has none of them until the person approves it
    (``auth_context_optional``: nullable, no default ``auth_time``), and
    only sessions and grants are looked up by device (``device_id_indexed``).
    """

    auth_context_optional: ClassVar[bool] = False
    device_id_indexed: ClassVar[bool] = True

    @declared_attr
    def account_id(cls) -> Mapped[str]:
        return mapped_column(
            ForeignKey("accounts.id", ondelete="CASCADE"),
            index=True,
            nullable=cls.auth_context_optional,
        )

    @declared_attr
    def device_id(cls) -> Mapped[str]:
        return mapped_column(
            ForeignKey("devices.id", ondelete="CASCADE"),
            index=cls.device_id_indexed or None,
            nullable=cls.auth_context_optional,
        )

    @declared_attr
    def account_generation(cls) -> Mapped[int]:
        return mapped_column(Integer, nullable=cls.auth_context_optional)

    @declared_attr
    def auth_time(cls) -> Mapped[datetime]:
        if cls.auth_context_optional:
            return mapped_column(UTCDateTime, nullable=True)
        return mapped_column(UTCDateTime, nullable=False, default=utcnow)

    @declared_attr
    def amr(cls) -> Mapped[list]:
        return mapped_column(JSON, nullable=False, default=list)

    @declared_attr
    def acr(cls) -> Mapped[str]:
        return mapped_column(String(64), nullable=False, default="0")


def claim_once(statement: Update, params: dict[str, Any] | None = None) -> bool:
    """Run ``statement``, a conditional ``UPDATE … WHERE <the row> AND <not
    yet claimed>``, and return True if this caller won the claim.

    Races are settled by the database, not by a Python lock: of any number
    of requests racing for the same row, in any number of processes, the
    database lets exactly one UPDATE match its WHERE (rowcount 1): PostgreSQL
    checks the WHERE again on the row the winner committed, SQLite
    serialises writers. Every other caller sees the row already changed and
    gets False. So a code is
    redeemed once, a refresh token rotated once, a link or recovery code
    used once, a TOTP step accepted once. Build the WHERE so that the
    claim itself makes it false. The claim is part of the caller's unit of
    work, which holds the claim with whatever it grants. ``params`` are
    the values of a prebuilt statement's bind parameters.
    """
    return rowcount(db.session.execute(statement, params)) == 1
