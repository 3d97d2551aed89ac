"""Column helpers shared by the tables, and ``claim_once``."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, Update
from sqlalchemy.types import TypeDecorator

from app.extensions import db


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


def claim_once(statement: Update) -> bool:
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
    claim itself makes it false. No commit: the caller's transaction holds
    the claim with whatever it grants.
    """
    return db.session.execute(statement).rowcount == 1
