"""SQLite writers wait in a queue that wakes them when the writer ahead ends.

SQLite lets one connection write at a time. Another writer gets
SQLITE_BUSY, and Python's sqlite3 then retries in SQLite's busy handler,
which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between
tries and is not woken when the lock frees. Two refresh grants that meet
at a write lock held for under a millisecond therefore cost the second
one several milliseconds, and at 16 connections some waits run to half
a second while writers that arrived later slip in between the sleeps
(bench/README.md, "Where issue 13 stands (2026-12-01, after
midnight)").

So every ``QueuedWriterConnection`` takes, before the statement that
opens its write transaction, its process's ``threading.Lock`` for that
database (the process's other writers wait on it and are woken the
moment it is released) and then an exclusive ``flock(2)`` on
``<database>-writer`` beside the database (the one writer of each other
process tries again every 50 to 500 µs: a blocking flock could not give
up after a timeout); and drops both the moment that transaction ends
(commit, rollback, close). SQLite's own lock and busy timeout still
stand behind it for any writer that does not come through here (the
``sqlite3`` shell, another program).

Which statements open the transaction follows Python's sqlite3 (its
legacy transaction control, the one SQLAlchemy uses): INSERT, UPDATE,
DELETE and REPLACE begin one when none is open. A wait longer than the
connection's ``timeout`` (or its ``queue_timeout``) gives up on the
queue and leaves the write to SQLite's busy handler, so a writer whose
lock holder is stuck fails as it did before (``database is locked``)
instead of hanging. A thread that already holds the queue through
another connection skips it for the same reason: it would wait for
itself.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time

# Python's sqlite3 begins a transaction before these (Modules/_sqlite/cursor.c).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Seconds between two tries at another process's flock: short, since a
# write transaction here lasts about a millisecond.
_FIRST_POLL, _LONGEST_POLL = 0.00005, 0.0005

_queues_guard = threading.Lock()
_queues: dict[str, _WriterQueue] = {}


def _opens_write(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITES)


class _WriterQueue:
    """The queue of one database file's writers in this process."""

    def __init__(self, lock_path: str):
        self.lock_path = lock_path
        self.turn = threading.Lock()
        self.holder: int | None = None  # thread ident holding ``turn``

    @classmethod
    def of(cls, database: str) -> _WriterQueue:
        lock_path = os.path.abspath(database) + "-writer"
        with _queues_guard:
            queue = _queues.get(lock_path)
            if queue is None:
                queue = _queues[lock_path] = cls(lock_path)
            return queue

    def enter(self, fd: int, timeout: float) -> bool:
        """Wait for this process's turn, then for the file lock on ``fd``.
        True once both are held; False when the thread holds the turn
        already (another connection of its own) or ``timeout`` seconds
        passed, and then nothing is held."""
        me = threading.get_ident()
        if self.holder == me:
            return False
        deadline = time.monotonic() + timeout
        if not self.turn.acquire(timeout=timeout):
            return False
        self.holder = me
        pause = _FIRST_POLL
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, _LONGEST_POLL)
        except BaseException:
            self.leave(fd, locked=False)  # an interrupt must not keep the turn
            raise
        self.leave(fd, locked=False)
        return False

    def leave(self, fd: int, locked: bool = True) -> None:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self.holder = None
        self.turn.release()


class QueuedWriterConnection(sqlite3.Connection):
    """A sqlite3 connection whose writers queue as the module says. Made by
    ``sqlite3.connect(path, factory=QueuedWriterConnection)``; an in-memory
    database (nothing to share) behaves as a plain connection."""

    def __init__(
        self,
        database,
        timeout: float = 5.0,
        *args,
        queue_timeout: float | None = None,
        **kwargs,
    ):
        """``timeout`` is sqlite3's (seconds of SQLite's busy handler);
        ``queue_timeout`` the seconds a writer waits in the queue before it
        leaves the write to that handler, ``timeout`` when not given."""
        super().__init__(database, timeout, *args, **kwargs)
        self._queue: _WriterQueue | None = None
        self._lock_fd = -1
        self._writing = False
        self._timeout = timeout if queue_timeout is None else queue_timeout
        name = os.fsdecode(database)
        if name and name != ":memory:" and not name.startswith("file:"):
            self._queue = _WriterQueue.of(name)
            self._lock_fd = os.open(
                self._queue.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )

    def cursor(self, factory=None):
        return super().cursor(factory or QueuedWriterCursor)

    # The C shortcuts would make a plain cursor and skip the queue.
    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, parameters, /):
        return self.cursor().executemany(sql, parameters)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._leave_if_done()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._leave_if_done()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._writing and self._queue is not None:
                self._writing = False
                self._queue.leave(self._lock_fd)
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def _enter_before(self, sql: str) -> None:
        if (
            self._queue is not None
            and not self._writing
            and not self.in_transaction
            and _opens_write(sql)
        ):
            self._writing = self._queue.enter(self._lock_fd, self._timeout)

    def _leave_if_done(self) -> None:
        if self._writing and not self.in_transaction and self._queue is not None:
            self._writing = False
            self._queue.leave(self._lock_fd)


class QueuedWriterCursor(sqlite3.Cursor):
    """The cursor of a ``QueuedWriterConnection``: joins the queue before a
    statement that opens a write transaction, and leaves it after any
    statement that ended one (a write in autocommit mode, a COMMIT)."""

    connection: QueuedWriterConnection

    def execute(self, sql, parameters=(), /):
        return self._queued(super().execute, sql, parameters)

    def executemany(self, sql, parameters, /):
        return self._queued(super().executemany, sql, parameters)

    def _queued(self, run, sql, parameters):
        connection = self.connection
        connection._enter_before(sql)
        try:
            return run(sql, parameters)
        finally:
            connection._leave_if_done()
