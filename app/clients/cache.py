"""Clients kept in each process, checked against the database on every use.

Every token, introspection and revocation request authenticates its
client, and reading the client through the request's session cost about
a third of a client_credentials grant's CPU (bench/README.md, "Where issue
13 stands (2026-12-01, morning)"): the session, its connection and
transaction, the statement and the ORM object, for a row that almost
never changes.

So a process keeps the rows it has read, each tagged with the generation
of the client registry it read before the row, and before each use reads
that one value again: ``client_registry.generation``, 32 random hex
digits that triggers renew in the transaction of any change to
``clients`` (migration 0009), whoever makes it. A kept row is used only
while the generation is the one it was read under, so a client deleted or
given a new secret stops working on the next request in every process, as
it did when every request read its row. Random rather than a counter: a
database restored from a backup never comes back to a generation under
which other rows were kept.

The generation is read with the driver: on the connection the request's
session holds if it has one, else on a pooled connection outside any
transaction (autocommit on PostgreSQL; Python's sqlite3 opens no
transaction for a SELECT), so it is what is committed when it runs.
Whenever it cannot be read, the row is read as before and nothing is
kept: a fault can cost speed, never serve a stale client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db

_GENERATION_SQL = "SELECT generation FROM client_registry WHERE id = 1"


def registry_generation() -> str | None:
    """``client_registry.generation`` as committed now, or None when the
    database cannot answer (down, restarting, the table missing).

    One primary-key read through the driver, on the connection the
    request's session already holds if it has begun, else on one checked
    out of the engine's pool and given back at once: a thread never holds
    two connections (docs/PRODUCTION.md counts on one per thread).
    """
    engine = db.engine
    errors = engine.dialect.loaded_dbapi.Error
    if db.session.registry.has() and db.session().in_transaction():
        # Read committed (PostgreSQL's default) or SQLite's own view: what
        # is committed now, or what this very request changed. A failure
        # here fails the request's transaction too, which is what a missing
        # table should do.
        held: Any = db.session.connection().connection.dbapi_connection
        try:
            return _read_generation(held)
        except errors:
            return None
    try:
        pooled = engine.raw_connection()
    except SQLAlchemyError:
        return None
    # The driver's connection: typed Optional for a fairy already closed,
    # which one just checked out is not.
    driver: Any = pooled.dbapi_connection
    postgresql = engine.dialect.name == "postgresql"
    try:
        if postgresql:
            driver.autocommit = True  # no BEGIN and ROLLBACK round trips
        generation = _read_generation(driver)
        if postgresql:
            driver.autocommit = False  # as the pool handed it out
    except errors:
        pooled.invalidate()  # broken or in an unknown state: not back in the pool
        return None
    finally:
        pooled.close()
    return generation


def _read_generation(driver: Any) -> str | None:
    cursor = driver.cursor()
    try:
        cursor.execute(_GENERATION_SQL)
        row = cursor.fetchone()
    finally:
        cursor.close()  # ends the statement, and SQLite's read snapshot
    return None if row is None else str(row[0])


class ClientCache:
    """Client rows by ``client_id``, each valid while the registry
    generation it was read under stands.

    ``generation()`` reads the registry's generation (None: unknown).
    At most ``max_entries`` rows are kept: only clients that exist are
    kept (so unknown ids sent by anyone cannot fill it), and when that many
    are, all are forgotten.
    """

    def __init__(
        self,
        generation: Callable[[], str | None] = registry_generation,
        max_entries: int = 1024,
    ):
        self._generation = generation
        self._max_entries = max_entries
        self._rows: dict[str, tuple[str, Mapping[str, Any]]] = {}

    def row(
        self, client_id: str, load: Callable[[str], Mapping[str, Any] | None]
    ) -> Mapping[str, Any] | None:
        """The row of ``client_id``: the kept one if the registry has not
        changed since it was read, else ``load(client_id)`` (None: no such
        client), kept for the next call. Callers must not change it."""
        # The generation first, then the row: a row read after a change is
        # then kept under a generation from before it, already stale.
        generation = self._generation()
        if generation is None:
            return load(client_id)
        kept = self._rows.get(client_id)
        if kept is not None and kept[0] == generation:
            return kept[1]
        row = load(client_id)
        if row is not None:
            if len(self._rows) >= self._max_entries:
                self._rows.clear()
            self._rows[client_id] = (generation, row)
        return row
