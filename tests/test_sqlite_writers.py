"""SQLite writers queue and are woken when the writer ahead ends
(app/sqlite_writers.py), across threads and processes; a stuck holder
still ends in SQLite's own "database is locked", never a hang.

The waiting connections below have SQLite's busy timeout at 0: a write
that reached SQLite while another connection held its write lock would
fail at once, so a write that succeeds after waiting was held back by
the queue, not by SQLite's sleeping busy handler."""

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.sqlite_writers import QueuedWriterConnection

ROOT = Path(__file__).resolve().parent.parent


def connect(path: Path, **kwargs) -> sqlite3.Connection:
    return sqlite3.connect(
        path, factory=QueuedWriterConnection, check_same_thread=False, **kwargs
    )


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "queue.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    return path


def queue_is_free(path: Path) -> bool:
    """Whether another process could take the writer lock now."""
    fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def write_in_thread(path: Path, key: str, **kwargs):
    outcome: dict = {}

    def write():
        connection = connect(path, timeout=0, **kwargs)
        try:
            connection.execute("INSERT INTO t VALUES (?)", (key,))
            connection.commit()
            outcome["ok"] = True
        except sqlite3.OperationalError as exc:
            outcome["error"] = str(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    return thread, outcome


def keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as reader:
        return {k for (k,) in reader.execute("SELECT k FROM t")}


def test_a_writer_in_another_thread_waits_its_turn(database):
    first = connect(database)
    first.execute("INSERT INTO t VALUES ('first')")
    assert not queue_is_free(database)
    thread, outcome = write_in_thread(database, "second", queue_timeout=30)
    thread.join(0.3)
    # Without the queue its write would have met SQLite's lock and, with a
    # busy timeout of 0, failed already.
    assert thread.is_alive(), outcome
    first.commit()
    thread.join(30)
    assert outcome == {"ok": True}
    assert keys(database) == {"first", "second"}
    assert queue_is_free(database)
    first.close()


def test_a_writer_in_another_process_waits_its_turn(database):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "from app.sqlite_writers import QueuedWriterConnection\n"
            "c = sqlite3.connect(sys.argv[1], factory=QueuedWriterConnection)\n"
            "c.execute(\"INSERT INTO t VALUES ('other process')\")\n"
            "print('holding', flush=True)\n"
            "sys.stdin.readline()\n"
            "c.commit()\n",
            str(database),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline() == "holding\n"
        thread, outcome = write_in_thread(database, "this process", queue_timeout=30)
        thread.join(0.3)
        assert thread.is_alive(), outcome
        holder.stdin.write("commit\n")
        holder.stdin.flush()
        assert holder.wait(30) == 0
        thread.join(30)
    finally:
        holder.kill()
    assert outcome == {"ok": True}
    assert keys(database) == {"other process", "this process"}


def test_a_stuck_holder_ends_in_database_is_locked_not_a_hang(database):
    first = connect(database)
    first.execute("INSERT INTO t VALUES ('first')")
    thread, outcome = write_in_thread(database, "second", queue_timeout=0.05)
    thread.join(30)
    assert not thread.is_alive()
    assert outcome == {"error": "database is locked"}
    first.rollback()
    assert queue_is_free(database)
    first.close()


def test_a_thread_never_waits_for_its_own_other_connection(database):
    first, second = connect(database), connect(database, timeout=0)
    first.execute("INSERT INTO t VALUES ('first')")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        second.execute("INSERT INTO t VALUES ('second')")
    first.commit()
    second.execute("INSERT INTO t VALUES ('second')")
    second.commit()
    assert keys(database) == {"first", "second"}
    first.close()
    second.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_queue_is_left_when_the_transaction_ends(database, end):
    connection = connect(database)
    connection.execute("SELECT k FROM t").fetchall()
    assert queue_is_free(database), "a read does not queue"
    connection.execute("INSERT INTO t VALUES ('x')")
    assert not queue_is_free(database)
    getattr(connection, end)()
    assert queue_is_free(database)
    connection.close()


def test_a_failed_write_holds_its_turn_until_the_rollback(database):
    connection = connect(database)
    connection.execute("INSERT INTO t VALUES ('x')")
    connection.commit()
    connection.execute("INSERT INTO t VALUES ('y')")
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("INSERT INTO t VALUES ('x')")
    assert connection.in_transaction
    assert not queue_is_free(database)
    connection.rollback()
    assert queue_is_free(database)
    assert keys(database) == {"x"}
    connection.close()


def test_autocommit_writes_leave_the_queue_after_each_statement(database):
    connection = connect(database, isolation_level=None)
    connection.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",)])
    assert queue_is_free(database)
    assert keys(database) == {"a", "b"}
    connection.close()


def test_the_app_engine_queues_its_sqlite_writers(app_ctx):
    from app.extensions import db

    if db.engine.dialect.name != "sqlite":
        pytest.skip("the queue is SQLite's")
    with db.engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        assert isinstance(dbapi, QueuedWriterConnection)
