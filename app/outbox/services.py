"""Queueing deliveries and the worker that makes them.

``enqueue`` adds a row to the caller's transaction, so a delivery exists if
and only if the change that caused it was committed. The worker claims due
rows, calls the handler for each row's kind, and either marks the row sent or
schedules another attempt with exponential backoff.

A claim leases rows for a short LEASE_SECONDS from the moment of the claim,
and a heartbeat thread renews the lease of the rows still in hand while the
handlers run, so a long run never lets a second worker take rows this one
holds, and a worker that dies (its heartbeat with it) gives its rows back
within one lease. A row's ``attempts`` after the claim fences the holder:
renewals and failure bookkeeping touch the row only while it is still ours.
Delivery is at least once (a worker stalled for longer than a lease may
repeat one), so handlers must be safe to repeat.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Row, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db, rowcount
from app.models import OutboxMessage
from app.models.base import claim_once, utcnow
from app.unit_of_work import commit_early

log = logging.getLogger(__name__)

BATCH_SIZE = 20
# A claimed row is not offered to another worker for this long after its
# claim or its last renewal; the heartbeat renews three times per lease.
LEASE_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600
MAX_BATCHES_PER_RUN = 100
ERROR_CHARS = 1000


@dataclass(frozen=True)
class Delivery:
    """One claimed message, as its handler sees it."""

    id: int
    kind: str
    payload: dict
    attempts: int  # counting this one
    now: datetime  # the worker's clock for this run


Handler = Callable[[Delivery], None]


class DeliveryFailed(Exception):
    """Raised by a handler when the other side did not take the message; any
    exception means the same, this one just reads better in last_error."""


_HANDLERS_KEY = "latchkey.outbox_handlers"


def register_handlers(app: Flask, handlers: Mapping[str, Handler]) -> None:
    """Register the handlers of the kinds an owner queues (mail, back-channel
    logout), once at start-up in create_app. The owners import the outbox to
    queue; the outbox never imports them, so the layers stay one-way. A kind
    registered twice raises ValueError."""
    registered = app.extensions.setdefault(_HANDLERS_KEY, {})
    clash = registered.keys() & handlers.keys()
    if clash:
        raise ValueError(f"outbox kinds registered twice: {sorted(clash)}")
    registered.update(handlers)


def registered_handlers() -> dict[str, Handler]:
    """The handler for every kind of message this app queues (needs an app
    context)."""
    return dict(current_app.extensions.get(_HANDLERS_KEY, {}))


# -- queueing -------------------------------------------------------------
def enqueue(
    kind: str,
    payload: dict,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Add a message to the current unit of work.

    Returns the new row's id, or None when a message with ``dedupe_key`` was
    queued before (keys outlive delivery, until `flask outbox purge`).
    Never raises on a duplicate key, so it cannot spoil the caller's
    transaction.
    """
    values = {
        "kind": kind,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "next_attempt_at": not_before or utcnow(),
    }
    # Latchkey runs on PostgreSQL and SQLite, which both have ON CONFLICT.
    insert = postgresql.insert if _dialect() == "postgresql" else sqlite.insert
    statement = (
        insert(OutboxMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return db.session.execute(statement).scalar_one_or_none()


def _dialect() -> str:
    return db.session.get_bind().dialect.name


# -- the worker -----------------------------------------------------------
def backoff_seconds(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Delay before the next try after ``attempts`` failed ones: 2**attempts
    seconds capped at an hour, with jitter (between half and all of it) so
    that rows failing together do not retry in lockstep."""
    ceiling = min(2 ** min(attempts, 16), MAX_BACKOFF_SECONDS)
    return ceiling / 2 + rand() * ceiling / 2


def run_once(
    now: datetime | None = None,
    handlers: Mapping[str, Handler] | None = None,
    batch_size: int = BATCH_SIZE,
    lease_seconds: float = LEASE_SECONDS,
    stop: threading.Event | None = None,
) -> int:
    """Deliver every message that is due (at ``now``, a fixed clock for
    tests; by default the clock at each claim) and whose kind has a handler,
    batch after batch, including messages the handlers queue along the way.
    Commits early after each message (its bookkeeping); stops between
    messages once ``stop`` is set, handing the rest of its batch back at once.

    Returns how many deliveries were attempted (successful or not). Needs an
    app context. A row that fails waits out its backoff, even within a run.
    """
    clock = (lambda: now) if now is not None else utcnow
    handlers = registered_handlers() if handlers is None else handlers
    if not handlers:
        return 0
    attempted = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        if stop is not None and stop.is_set():
            break
        batch = _claim(clock(), sorted(handlers), batch_size, lease_seconds)
        if not batch:
            break
        with _Lease(batch, lease_seconds, clock) as lease:
            for delivery in batch:
                if stop is not None and stop.is_set():
                    break
                lease.start(delivery)
                _deliver(delivery, handlers[delivery.kind])
                lease.done(delivery)
                attempted += 1
    return attempted


class _Lease:
    """Renews the lease of the claimed rows not yet delivered, from a thread
    of its own (its own session), every third of the lease. On leaving, the
    rows not yet started (after a stop, or a handler that brought the worker
    down) are handed back: due at once, not after the lease. A delivery cut
    off mid-way keeps its lease, which runs out unrenewed."""

    def __init__(self, batch: list[Delivery], lease_seconds: float, clock):
        self._held = {d.id: d.attempts for d in batch}
        self._in_flight: Delivery | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._lease = lease_seconds
        self._clock = clock
        self._app = current_app._get_current_object()  # type: ignore[attr-defined]  # Flask types the proxy as Flask
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def start(self, delivery: Delivery) -> None:
        self._in_flight = delivery

    def done(self, delivery: Delivery) -> None:
        with self._lock:
            self._held.pop(delivery.id, None)
        self._in_flight = None

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        with self._lock:
            if self._in_flight is not None:
                self._held.pop(self._in_flight.id, None)
        if self._held:
            db.session.rollback()
            self._set_due(self._clock())
        return False

    def _beat(self) -> None:
        with self._app.app_context():
            try:
                while not self._stop.wait(self._lease / 3):
                    self._set_due(self._clock() + timedelta(seconds=self._lease))
            except Exception:  # the claim's own lease still stands
                log.exception("outbox: renewing a lease failed")
            finally:
                db.session.remove()

    def _set_due(self, when: datetime) -> None:
        with self._lock:
            held = list(self._held.items())
        if not held:
            return
        db.session.execute(
            update(OutboxMessage)
            .where(
                tuple_(OutboxMessage.id, OutboxMessage.attempts).in_(held),
                OutboxMessage.sent_at.is_(None),
            )
            .values(next_attempt_at=when)
            .execution_options(synchronize_session=False)
        )
        commit_early("outbox lease renewed")


def _claim(
    now: datetime, kinds: list[str], limit: int, lease_seconds: float
) -> list[Delivery]:
    """Take up to ``limit`` due rows for this worker, leased from ``now``
    (the moment of this claim, not of the run's start), and commit early, so
    that the handlers run outside any long transaction."""
    due = (
        select(
            OutboxMessage.id,
            OutboxMessage.kind,
            OutboxMessage.payload,
            OutboxMessage.attempts,
        )
        .where(
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.kind.in_(kinds),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    lease_until = now + timedelta(seconds=lease_seconds)
    claimed: list[Row[Any]] = []
    if _dialect() == "postgresql":
        # Rows another worker is claiming right now are skipped, not waited
        # for; once it commits they are leased into the future and no longer
        # due, so no row is handed to two workers.
        rows = db.session.execute(due.with_for_update(skip_locked=True)).all()
        if rows:
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_([r.id for r in rows]))
                .values(
                    attempts=OutboxMessage.attempts + 1, next_attempt_at=lease_until
                )
                .execution_options(synchronize_session=False)
            )
        claimed = list(rows)
    else:
        # SQLite has no row locks; a compare-and-set on ``attempts`` lets only
        # one of several processes sharing the file take each row.
        for row in db.session.execute(due).all():
            won = claim_once(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,
                    OutboxMessage.attempts == row.attempts,
                    OutboxMessage.sent_at.is_(None),
                )
                .values(attempts=row.attempts + 1, next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
            if won:
                claimed.append(row)
    commit_early("outbox claim")
    return [
        Delivery(r.id, r.kind, dict(r.payload or {}), r.attempts + 1, now)
        for r in claimed
    ]


def _deliver(delivery: Delivery, handler: Handler) -> bool:
    """Run one handler; its database writes commit with the row's sent_at,
    or are rolled back with its failure recorded."""
    try:
        handler(delivery)
    except Exception as exc:  # any failure, ours or theirs, means try again
        db.session.rollback()
        delay = backoff_seconds(delivery.attempts)
        log.warning(
            "outbox %s #%s attempt %s failed, retrying in %.0f s: %s",
            delivery.kind,
            delivery.id,
            delivery.attempts,
            delay,
            exc,
        )
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        # Fenced by attempts: if our lease lapsed and another worker holds
        # the row now, its lease is not cut short.
        _update(
            delivery.id,
            OutboxMessage.attempts == delivery.attempts,
            last_error=error,
            next_attempt_at=delivery.now + timedelta(seconds=delay),
        )
        return False
    _update(delivery.id, sent_at=delivery.now)
    return True


def _update(message_id: int, *conditions, **values) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    commit_early("outbox delivery bookkeeping")


def run_forever(
    poll_interval: float = 2.0,
    stop: threading.Event | None = None,
    handlers: Mapping[str, Handler] | None = None,
    chores: Sequence[Callable[[], object]] = (),
    lease_seconds: float = LEASE_SECONDS,
) -> None:
    """Call each of ``chores`` (work that queues deliveries, such as ending
    expired sessions), then run_once, every ``poll_interval`` seconds until
    ``stop`` is set. A failed run (say, the database is away) is logged and
    tried again."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            for chore in chores:
                chore()
            run_once(handlers=handlers, stop=stop, lease_seconds=lease_seconds)
        except Exception:
            log.exception("outbox run failed; trying again in %s s", poll_interval)
        finally:
            db.session.remove()
        stop.wait(poll_interval)


# -- operators ------------------------------------------------------------
def outbox_status(now: datetime | None = None) -> dict:
    """Counts of messages: ``pending`` (not yet failed), ``failed`` (failed
    at least once, waiting to retry), ``sent``; ``due`` of the unsent are
    ready now; the oldest unsent one's age; the same counts per kind."""
    now = now or utcnow()
    unsent = OutboxMessage.sent_at.is_(None)
    rows = db.session.execute(
        select(
            OutboxMessage.kind,
            func.count().filter(unsent, OutboxMessage.last_error.is_(None)),
            func.count().filter(unsent, OutboxMessage.last_error.is_not(None)),
            func.count().filter(OutboxMessage.sent_at.is_not(None)),
            func.count().filter(unsent, OutboxMessage.next_attempt_at <= now),
            func.min(OutboxMessage.created_at).filter(unsent),
        ).group_by(OutboxMessage.kind)
    ).all()
    names = ("pending", "failed", "sent", "due")
    kinds = {row[0]: dict(zip(names, row[1:5], strict=True)) for row in rows}
    totals = {name: sum(k[name] for k in kinds.values()) for name in names}
    oldest = min((row[5] for row in rows if row[5] is not None), default=None)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return {
        **totals,
        "oldest_unsent_age_seconds": (
            int((now - oldest).total_seconds()) if oldest else None
        ),
        "kinds": kinds,
    }


def purge_sent(older_than: timedelta, now: datetime | None = None) -> int:
    """Delete messages sent more than ``older_than`` ago; their dedupe keys go
    with them. Returns how many."""
    cutoff = (now or utcnow()) - older_than
    result = db.session.execute(
        delete(OutboxMessage).where(OutboxMessage.sent_at < cutoff)
    )
    return rowcount(result)
