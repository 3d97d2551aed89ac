"""Incident response: forcing password resets on a set of accounts, in
batches an operator can interrupt and run again.

A forced account can still sign in, but is sent to the password change
before anything else and gets no tokens until it has a new password
(app/web/signin.py, LatchkeyAuthorizationServer.generate_token).
An SSO-only account has no password to reset; with ``sign_out`` it is
signed out everywhere and told to sign in again through its provider.

Each batch is one transaction and a constant number of statements whatever
its size (one per kind of row): one UPDATE of the accounts (the must-reset
flag, and with ``sign_out`` the generation every session, grant and code
is compared against), one back-channel logout row for the batch, one
multi-row INSERT of security events and one of notices. All or nothing.

The notice's outbox dedupe key names the account and the incident, and is
also what marks an account as done for that incident: a run that is
stopped and started again, or repeated, picks up exactly the accounts it
has not done yet, so nobody is signed out or emailed twice.
"""

from __future__ import annotations

import json
import multiprocessing
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import (
    JSON,
    ColumnElement,
    Row,
    String,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.events.services import EventTag
from app.extensions import db
from app.logout.backchannel import queue_logout_for_accounts
from app.mail.services import KIND as EMAIL_KIND
from app.mail.services import MailMerge
from app.models import (
    Account,
    AccountStatus,
    FederatedIdentity,
    OutboxMessage,
    SecurityEvent,
)
from app.models.base import UTCDateTime, utcnow
from app.unit_of_work import commit_early

BATCH_SIZE = 500
INCIDENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NOTICE_TEMPLATE = "reset_forced"
SSO_NOTICE_TEMPLATE = "signed_out_incident"
LOCK = "latchkey-incident:"


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
    sso_only_signed_out: int = 0
    emails_queued: int = 0
    account_ids: list[str] = field(default_factory=list)


def dedupe_key(incident: str, account_id: str) -> str:
    return f"{NOTICE_TEMPLATE}:{incident}:{account_id}"


def check_incident_name(name: str) -> str:
    if not INCIDENT_NAME.match(name or ""):
        raise InvalidIncidentName(name)
    return name


def _not_done(incident: str, sign_out: bool) -> ColumnElement[bool]:
    """Accounts this incident has not reached: not sent this incident's
    notice, and either a password account not marked already (by this or an
    earlier incident) or, with ``sign_out``, an active SSO-only account."""
    notice_queued = exists().where(
        OutboxMessage.dedupe_key == literal(dedupe_key(incident, "")) + Account.id
    )
    password_account = and_(
        Account.password_hash.is_not(None), Account.must_reset_password.is_(False)
    )
    if sign_out:
        # An SSO-only account that is not active was signed out when it
        # stopped being active (app/accounts/lifecycle.py), and its mail is
        # not read: nothing to do.
        sso_only = and_(
            Account.password_hash.is_(None), Account.status == AccountStatus.ACTIVE
        )
        reached = or_(password_account, sso_only)
    else:
        reached = password_account  # SSO-only: no password to reset
    return and_(Account.deleted_at.is_(None), reached, ~notice_queued)


def pending_batches(
    selection: Selection,
    incident: str,
    batch_size: int = BATCH_SIZE,
    sign_out: bool = False,
) -> Iterator[list[str]]:
    """Ids of accounts still to do, ``batch_size`` at a time, in id order.

    Keyset pagination: each batch starts after the last id of the one before,
    so a batch costs the same at the start and the end of a million rows,
    and what a committed batch did is never selected again.
    """
    if selection.emails is not None:
        yield from _batches_by_email(selection.emails, incident, batch_size, sign_out)
        return
    condition = _not_done(incident, sign_out)
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
    emails: list[str], incident: str, batch_size: int, sign_out: bool
) -> Iterator[list[str]]:
    for start in range(0, len(emails), batch_size):
        chunk = emails[start : start + batch_size]
        ids = list(
            db.session.execute(
                select(Account.id)
                .where(_not_done(incident, sign_out), Account.email.in_(chunk))
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


class IncidentInProgress(Exception):
    """Another run of the same incident holds its lock (PostgreSQL)."""


@contextmanager
def incident_lock(incident: str) -> Iterator[None]:
    """Hold the run-wide lock of ``incident`` (a PostgreSQL session advisory
    lock on a connection of its own) or raise IncidentInProgress.

    One run at a time per incident, so that two runs started at once (two
    terminals, a retried Job) cannot both claim an SSO-only account: the
    claim re-checks a password account's flag under its row lock, but a
    NOT EXISTS over another run's uncommitted notices sees nothing. Within
    a run, batches are disjoint and may run side by side. SQLite
    serializes writers by itself."""
    if _dialect() != "postgresql":
        yield
        return
    key = func.hashtext(literal(LOCK + incident))
    # A session-level lock needs no transaction: in autocommit this
    # connection never sits idle in one for the whole run (where
    # idle_in_transaction_session_timeout would end it, lock and all), and
    # it commits nothing of the run's, whose batches commit on their own.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.execute(select(func.pg_try_advisory_lock(key))).scalar():
            raise IncidentInProgress(incident)
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))


class BatchRunner:
    """Runs the batches of one incident, ``jobs`` at a time, each in its own
    process, session and transaction (PostgreSQL; SQLite runs one at a
    time), and yields each BatchResult as it completes. ``stopped_early``
    tells whether ``max_batches`` stopped it before the selection ran out.

    Processes, not threads: building and sealing a million notices is
    Python work, which threads would run one at a time under the
    interpreter lock (measured: a million accounts took 173 s with two
    threads, the command's one core the limit). The workers are forked, so
    they inherit the app as configured, and drop the parent's pooled
    connections before their first statement."""

    def __init__(self, incident: str, sign_out: bool, jobs: int = 1, max_batches=None):
        self.incident, self.sign_out = incident, sign_out
        self.jobs = jobs if _dialect() == "postgresql" else 1
        self.max_batches = max_batches
        self.stopped_early = False

    def run(self, batches: Iterator[list[str]]) -> Iterator[BatchResult]:
        if self.jobs == 1:
            yield from self._inline(batches)
            return
        global _FORKED_APP
        _FORKED_APP = current_app._get_current_object()  # type: ignore[attr-defined]  # Flask types the proxy as Flask
        in_flight: set[Future] = set()
        taken = 0
        with ProcessPoolExecutor(
            self.jobs,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_forked_worker_start,
        ) as pool:
            while True:
                while len(in_flight) < self.jobs and not self._enough(taken):
                    ids = next(batches, None)
                    if ids is None:
                        break
                    in_flight.add(
                        pool.submit(_forked_batch, ids, self.incident, self.sign_out)
                    )
                    taken += 1
                if not in_flight:
                    return
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()

    def _inline(self, batches: Iterator[list[str]]) -> Iterator[BatchResult]:
        for taken, ids in enumerate(batches, start=1):
            yield force_reset_batch(ids, self.incident, self.sign_out)
            if self._enough(taken):
                return

    def _enough(self, taken: int) -> bool:
        if self.max_batches and taken >= self.max_batches:
            self.stopped_early = True
            return True
        return False


# The app a forked batch process inherits from BatchRunner.run.
_FORKED_APP: Flask | None = None


def _forked_worker_start() -> None:
    # The pooled connections came with the fork and belong to the parent:
    # forget them (without closing the parent's sockets) and open our own.
    assert _FORKED_APP is not None  # set before the fork
    with _FORKED_APP.app_context():
        db.engine.dispose(close=False)


def _forked_batch(ids: list[str], incident: str, sign_out: bool) -> BatchResult:
    assert _FORKED_APP is not None  # set before the fork
    with _FORKED_APP.app_context():
        try:
            return force_reset_batch(ids, incident, sign_out)
        finally:
            db.session.remove()


def force_reset_batch(
    account_ids: list[str], incident: str, sign_out: bool
) -> BatchResult:
    """Do ``account_ids`` for ``incident`` in one transaction of a constant
    number of statements, committed early (a batch boundary): mark the
    password accounts must-reset, with ``sign_out`` cut every account off
    everywhere (the generation bump of "sign out of all devices"), record
    one event each and queue one notice each to the active ones. Accounts
    another run did meanwhile are left out, so each account is done once."""
    result = BatchResult()
    rows = _claim(account_ids, incident, sign_out)
    if not rows:
        commit_early("incident batch")
        return result
    result.account_ids = [row.id for row in rows]
    result.marked = sum(not _is_sso_only(row) for row in rows)
    if sign_out:
        # The generation before the bump is the one cut off.
        cut_offs = [(row.id, row.generation - 1) for row in rows]
        queue_logout_for_accounts(cut_offs, f"{incident}:{rows[0].id}")
        result.signed_out = len(rows)
        result.sso_only_signed_out = len(rows) - result.marked
    _record_events(result.account_ids, incident, sign_out)
    result.emails_queued = queue_notices(rows, incident, sign_out)
    commit_early("incident batch")
    return result


def _is_sso_only(row: Row) -> bool:
    return row.password_length is None


def _claim(account_ids: list[str], incident: str, sign_out: bool) -> list[Row]:
    """One UPDATE of the accounts still to do among ``account_ids``; their
    rows as they are after it. The not-done condition is checked again in
    the statement itself, under the row locks, against a concurrent run."""
    values: dict = {
        Account.must_reset_password: case(
            (Account.password_hash.is_not(None), True),
            else_=Account.must_reset_password,
        )
    }
    if sign_out:
        values[Account.generation] = Account.generation + 1
    return list(
        db.session.execute(
            update(Account)
            .where(_id_in(account_ids), _not_done(incident, sign_out))
            .values(values)
            .returning(
                Account.id,
                Account.email,
                Account.name,
                Account.status,
                Account.generation,
                # NULL exactly for an SSO-only account. (SQLite 3.40 answers
                # "password_hash IS NULL" wrongly in this RETURNING clause.)
                func.length(Account.password_hash).label("password_length"),
            )
            .execution_options(synchronize_session=False)
        ).all()
    )


def _id_in(account_ids: list[str]) -> ColumnElement[bool]:
    """``accounts.id`` is one of ``account_ids``: on PostgreSQL as one array
    parameter (``= ANY``), since thousands of placeholders cost more to
    send than the statement's work."""
    if _dialect() == "postgresql":
        return Account.id == any_(literal(account_ids, postgresql.ARRAY(String)))
    return Account.id.in_(account_ids)


def _record_events(account_ids: list[str], incident: str, sign_out: bool) -> None:
    """One event per account, of its kind, in one INSERT ... SELECT."""
    tag = case(
        (
            Account.password_hash.is_(None),
            literal(str(EventTag.SIGNED_OUT_FOR_INCIDENT)),
        ),
        else_=literal(str(EventTag.PASSWORD_RESET_FORCED)),
    )
    details = {"incident": incident, "signed_out": sign_out}
    db.session.execute(
        insert(SecurityEvent).from_select(
            ["account_id", "tag", "ip", "user_agent", "details", "created_at"],
            select(
                Account.id,
                tag,
                literal(""),
                literal(""),
                literal(details, JSON),
                literal(utcnow(), UTCDateTime),
            ).where(_id_in(account_ids)),
        )
    )


def queue_notices(rows: list[Row], incident: str, sign_out: bool) -> int:
    """Queue the notice of each active account in ``rows`` with one
    multi-row INSERT; the bodies are sealed as every queued email's are
    (app.mail.services.MailMerge). Returns how many were queued (a notice
    queued before for the same account and incident is not queued again)."""
    active = [row for row in rows if row.status == AccountStatus.ACTIVE]
    if not active:
        return 0
    providers = _provider_names([row.id for row in active if _is_sso_only(row)])
    merges: dict[str | None, MailMerge] = {}
    keys = [dedupe_key(incident, row.id) for row in active]
    payloads = [_notice(row, providers, merges, sign_out) for row in active]
    if _dialect() == "postgresql":
        queued = db.session.execute(
            _PG_INSERT_NOTICES,
            {
                "kind": EMAIL_KIND,
                "notices": json.dumps(
                    [{"k": k, "p": p} for k, p in zip(keys, payloads, strict=True)]
                ),
                "now": utcnow(),
            },
        )
        return len(queued.all())
    now = utcnow()
    messages = [
        {
            "kind": EMAIL_KIND,
            "payload": payload,
            "dedupe_key": key,
            "next_attempt_at": now,
            "created_at": now,
        }
        for key, payload in zip(keys, payloads, strict=True)
    ]
    queued = db.session.execute(
        sqlite.insert(OutboxMessage)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id),
        messages,
    )
    return len(queued.all())


# The notices of a batch as one JSON document: a multi-row VALUES of
# thousands of ~1 kB rows costs the client more to build and send than the
# server's work, and so do text[] parameters (psycopg quotes each element in
# Python; json.dumps of the whole batch runs in C). ON CONFLICT as in
# app.outbox.services.enqueue.
_PG_INSERT_NOTICES = text(
    """
    INSERT INTO outbox (kind, dedupe_key, payload, attempts, next_attempt_at,
                        created_at)
    SELECT :kind, n ->> 'k', n -> 'p', 0, :now, :now
    FROM json_array_elements(CAST(:notices AS json)) AS n
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id
    """
).bindparams(bindparam("now", type_=UTCDateTime))


def _notice(
    row: Row,
    providers: dict[str, str],
    merges: dict[str | None, MailMerge],
    sign_out: bool,
) -> dict:
    """The sealed notice for ``row``; each kind of notice (and, for SSO-only
    accounts, each set of providers) is rendered once per batch."""
    if not _is_sso_only(row):
        variant = None
        if variant not in merges:
            merges[variant] = MailMerge(NOTICE_TEMPLATE, signed_out=sign_out)
    else:
        variant = providers.get(row.id) or "the service you signed up with"
        if variant not in merges:
            merges[variant] = MailMerge(SSO_NOTICE_TEMPLATE, providers=variant)
    return merges[variant].payload(row.email)


def _provider_names(account_ids: list[str]) -> dict[str, str]:
    """The display names of the providers each account signs in with
    ("A" or "A or B"), by account id."""
    if not account_ids:
        return {}
    configured = current_app.extensions["latchkey"].federation.providers
    names: dict[str, list[str]] = {}
    for account_id, slug in db.session.execute(
        select(FederatedIdentity.account_id, FederatedIdentity.provider)
        .where(FederatedIdentity.account_id.in_(account_ids))
        .order_by(FederatedIdentity.account_id, FederatedIdentity.provider)
    ):
        provider = configured.get(slug)
        names.setdefault(account_id, []).append(provider.name if provider else slug)
    return {account_id: " or ".join(listed) for account_id, listed in names.items()}


def _dialect() -> str:
    return db.session.get_bind().dialect.name
