"""Incident response: forcing password resets on a set of accounts, in
batches an operator can interrupt and run again.

A forced account can still sign in, but is sent to the password change
before anything else and gets no tokens until it has a new password
(app/accounts/signin.py, LatchkeyAuthorizationServer.generate_token).

Each batch is one transaction: the accounts are marked, optionally cut off
everywhere, given a security event, and sent the notice, all or nothing.
The notice's outbox dedupe key names the account and the incident, and is
also what marks an account as done for that incident: a run that is
stopped and started again, or repeated, picks up exactly the accounts it
has not done yet, so nobody is emailed twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, literal, select, update

from app.events.services import EventTag, record_event
from app.extensions import db
from app.mail.services import queue_email
from app.models import Account, AccountStatus, OutboxMessage
from app.revocation.services import sign_out_account

BATCH_SIZE = 500
INCIDENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NOTICE_TEMPLATE = "reset_forced"


class InvalidIncidentName(ValueError):
    """An incident name is 1-100 letters, digits, dots, dashes, underscores."""


@dataclass
class Selection:
    """Which accounts: every one, those with these emails, or those created
    since a moment (exactly one of them)."""

    everyone: bool = False
    emails: list[str] | None = None
    created_since: datetime | None = None


@dataclass
class BatchResult:
    marked: int = 0
    signed_out: int = 0
    emails_queued: int = 0
    account_ids: list[str] = field(default_factory=list)


def dedupe_key(incident: str, account_id: str) -> str:
    return f"{NOTICE_TEMPLATE}:{incident}:{account_id}"


def check_incident_name(name: str) -> str:
    if not INCIDENT_NAME.match(name or ""):
        raise InvalidIncidentName(name)
    return name


def _not_done(incident: str) -> ColumnElement[bool]:
    """Accounts this incident has not reached: not marked already (by this
    or an earlier incident) and not sent this incident's notice."""
    notice_queued = exists().where(
        OutboxMessage.dedupe_key == literal(dedupe_key(incident, "")) + Account.id
    )
    return and_(
        Account.must_reset_password.is_(False),
        # SSO-only accounts have no password to leak, or to reset.
        Account.password_hash.is_not(None),
        Account.deleted_at.is_(None),
        ~notice_queued,
    )


def pending_batches(
    selection: Selection, incident: str, batch_size: int = BATCH_SIZE
) -> Iterator[list[str]]:
    """Ids of accounts still to do, ``batch_size`` at a time, in id order.

    Keyset pagination: each batch starts after the last id of the one before,
    so a batch costs the same at the start and the end of a million rows,
    and what a committed batch did is never selected again.
    """
    if selection.emails is not None:
        yield from _batches_by_email(selection.emails, incident, batch_size)
        return
    condition = _not_done(incident)
    if selection.created_since is not None:
        condition = and_(condition, Account.created_at >= selection.created_since)
    after = ""
    while True:
        ids = list(
            db.session.execute(
                select(Account.id)
                .where(condition, Account.id > after)
                .order_by(Account.id)
                .limit(batch_size)
            ).scalars()
        )
        if not ids:
            return
        yield ids
        after = ids[-1]


def _batches_by_email(
    emails: list[str], incident: str, batch_size: int
) -> Iterator[list[str]]:
    for start in range(0, len(emails), batch_size):
        chunk = emails[start : start + batch_size]
        ids = list(
            db.session.execute(
                select(Account.id)
                .where(_not_done(incident), Account.email.in_(chunk))
                .order_by(Account.id)
            ).scalars()
        )
        if ids:
            yield ids


def count_known(emails: Iterable[str], batch_size: int = BATCH_SIZE) -> int:
    """How many of ``emails`` (normalised) belong to an account."""
    emails = list(emails)
    known = 0
    for start in range(0, len(emails), batch_size):
        chunk = emails[start : start + batch_size]
        known += len(
            db.session.execute(select(Account.id).where(Account.email.in_(chunk)))
            .scalars()
            .all()
        )
    return known


def force_reset_batch(
    account_ids: list[str], incident: str, sign_out: bool
) -> BatchResult:
    """Mark ``account_ids`` must-reset, cut each off everywhere when
    ``sign_out`` (the same one-row cut-off as "sign out of all devices"),
    record the event and queue the notice; commits, all or nothing."""
    result = BatchResult(account_ids=list(account_ids))
    result.marked = db.session.execute(
        update(Account)
        .where(Account.id.in_(account_ids), Account.must_reset_password.is_(False))
        .values(must_reset_password=True)
        .execution_options(synchronize_session=False)
    ).rowcount
    rows = db.session.execute(
        select(Account.id, Account.email, Account.name, Account.status)
        .where(Account.id.in_(account_ids))
        .order_by(Account.id)
    ).all()
    for row in rows:
        if sign_out:
            sign_out_account(row.id)
            result.signed_out += 1
        if row.status != AccountStatus.ACTIVE:
            continue  # marked for when it returns, but nobody reads its mail
        queued = queue_email(
            row.email,
            NOTICE_TEMPLATE,
            dedupe_key=dedupe_key(incident, row.id),
            account=row,
            signed_out=sign_out,
        )
        result.emails_queued += queued is not None
    # Added last, so that they reach the database as one multi-row insert.
    for row in rows:
        record_event(
            EventTag.PASSWORD_RESET_FORCED,
            row.id,
            incident=incident,
            signed_out=sign_out,
        )
    db.session.commit()
    return result
