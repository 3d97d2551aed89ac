"""One unit of work per request and per command.

A request's writes are committed once, after its view has returned a
response (whatever its status: an OAuth error answer such as a refresh
token's reuse, which revokes the grant, must keep what it wrote), and
before that response is sent. An exception out of a view or a
before_request hook rolls everything back before any error handler
answers; a commit that fails is rolled back and answered the same way (a
500, or a 400 for a value the database cannot store), never as the
success the view meant. A ``flask`` command is one unit of work too:
committed when it returns, rolled back when it raises. Services and views
never commit; they write, and the request or command ends the unit. No
after_request hook writes to the database after the commit, and
Flask-SQLAlchemy's teardown removes the session (rolling back anything
left) when the app context ends.

Where the protocol needs a write to be seen by other requests or
processes before the unit ends, the code says so with ``commit_early``
and a reason (its docstring lists the allowed ones). That and
``_end_unit_of_work`` are the only two commits in ``app/``
(tests/test_unit_of_work.py holds that rule).

pyramid_tm, which Warehouse uses, does the same around its views.
"""

import functools
import logging

import click
from flask import Flask, Response, current_app, has_app_context

from app.extensions import db

log = logging.getLogger(__name__)


def commit_early(reason: str) -> None:
    """Commit the writes so far, before the request or command ends, because
    someone else must see them now. ``reason`` says why, in a few words, and
    is logged at debug level.

    Allowed only for:

    * claiming a single-use code (an approved device code, RFC 8628 §3.5),
      so that what follows in the same request (a forced password reset
      rolling back, an error) cannot give it back;
    * an owner's notice and event recorded while a rate limit answers 429:
      the limit raises, and an exception rolls the request back;
    * the forgot-password answer, which takes the same time whether or not
      an account exists: its writes commit inside that padded time, or the
      commit's own cost would tell;
    * the outbox worker, which no request or command ends: the claim of a
      batch and each lease renewal (other workers must see the lease at
      once), each delivery's bookkeeping (a delivery already made must not
      be made again after a crash), and each batch of its chore of ending
      expired sessions;
    * batch boundaries of long commands (incident response batches, also
      in the forked processes of ``--jobs``; retention purge batches;
      signing-key administration that other processes must see at once), so that a
      run stopped midway keeps the batches it finished and can be resumed.

    Anything else waits for the end of its request or command.
    """
    log.debug("early commit: %s", reason)
    db.session.commit()


def _end_unit_of_work() -> None:
    # The one commit of a request or command. A failure rolls back, so that
    # the error answer that follows finds a usable session, and propagates.
    # A request that never touched the database (JWKS, discovery) has no
    # transaction: committing would begin one only to end it, on every call.
    # One whose statements ended as they ran (see _no_transaction_open:
    # introspection) has nothing left to commit unless it added or changed
    # ORM objects since.
    if not db.session.registry.has():
        return  # not even a session was made (building one costs too)
    session = db.session()
    if not session.in_transaction():
        return
    if _no_transaction_open(session) and not (
        session.new or session.dirty or session.deleted
    ):
        return
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def _no_transaction_open(session) -> bool:
    """Whether the database holds no transaction of this session's: its
    connection is in AUTOCOMMIT (without_transaction, on PostgreSQL), or it
    is SQLite's and nothing has written, since Python's sqlite3 opens a
    transaction only before a statement that writes (its legacy
    transaction control). A commit would then only cost the call."""
    connection = session.connection()
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return True
    return (
        connection.dialect.name == "sqlite"
        and not connection.connection.dbapi_connection.in_transaction
    )


def abandon_unit_of_work() -> None:
    """Roll back everything the request or command wrote so far."""
    db.session.rollback()


def commit_response(response: Response) -> Response:
    """after_request hook, registered last so that it runs first: commit
    what the view wrote, whatever the response's status. A commit that
    fails replaces the response with the answer to its exception, as if
    the view had raised it (a value the database cannot store is a 400,
    anything else a 500), never the success the view meant; the other
    hooks then see that answer."""
    try:
        _end_unit_of_work()
    except Exception as exc:
        # pyramid_tm does the same: its exception views answer a failed commit.
        return current_app.make_response(current_app.handle_user_exception(exc))
    return response


class UnitOfWorkFlask(Flask):
    """Flask, rolling a request back whenever an exception leaves its view
    or a before_request hook, before any error handler answers: what an
    error page's request wrote is never committed."""

    def handle_user_exception(self, e):
        abandon_unit_of_work()
        return super().handle_user_exception(e)

    def ensure_sync(self, func):
        """Flask's, asked once per function instead of once per call: it
        runs ``inspect.iscoroutinefunction`` on every hook and view of every
        request (seventeen a request here, ~10% of a JWKS answer's CPU)."""
        try:
            return self._sync_functions[func]
        except AttributeError:
            self._sync_functions: dict = {}
        except KeyError:
            pass
        except TypeError:  # unhashable: ask Flask every time
            return super().ensure_sync(func)
        sync = self._sync_functions[func] = super().ensure_sync(func)
        return sync


def init_unit_of_work(app: Flask) -> None:
    """Commit each request after its view returned (call it after every
    other after_request hook is registered: Flask runs them in reverse)."""
    app.after_request(commit_response)


def as_unit_of_work(command: click.Command) -> None:
    """Make ``command`` (and every command of a group) one unit of work:
    commit when its callback returns, roll back when it raises (a click
    ``Exit`` with status 0, i.e. ``ctx.exit()``, counts as returning)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            as_unit_of_work(sub)
        return
    callback = command.callback
    if callback is None or getattr(callback, "unit_of_work", False):
        return  # create_app runs again for each app; wrap once

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            result = callback(*args, **kwargs)
        except click.exceptions.Exit as exc:
            if has_app_context() and exc.exit_code == 0:
                _end_unit_of_work()
            elif has_app_context():
                abandon_unit_of_work()
            raise
        except BaseException:
            if has_app_context():
                abandon_unit_of_work()
            raise
        if has_app_context():
            _end_unit_of_work()
        return result

    # A marker register_cli reads, so a command is never wrapped twice.
    run.unit_of_work = True  # type: ignore[attr-defined]
    command.callback = run
