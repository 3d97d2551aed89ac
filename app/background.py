"""Development convenience: the `flask run` server processes the outbox in a
daemon thread, so the trial needs no second process. Production runs
`flask outbox run` on its own (LATCHKEY_OUTBOX_THREAD is off there)."""

import logging
import threading

import click
from flask import Flask

from app.outbox.services import run_forever

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


def _is_flask_run() -> bool:
    """Whether this app is being built by `flask run` (not `flask db
    upgrade`, another command, the production server or a test)."""
    from flask.cli import run_command

    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.command is run_command


def install_dev_worker(app: Flask, poll_seconds: float = POLL_SECONDS) -> bool:
    """Start the outbox thread on the first request the `flask run` server
    serves. Lazily, because under the reloader the watching parent process
    builds the app too but never serves; only the serving child should work
    the outbox. Returns whether the hook was installed."""
    if not _is_flask_run():
        return False
    lock = threading.Lock()
    started = threading.Event()

    def start_outbox_thread():
        if started.is_set():
            return
        with lock:
            if started.is_set():
                return
            started.set()
            threading.Thread(
                target=_work, args=(app, poll_seconds), name="outbox", daemon=True
            ).start()
            log.info(
                "outbox: processing in a background thread every %s s", poll_seconds
            )

    app.before_request(start_outbox_thread)
    return True


def _work(app: Flask, poll_seconds: float) -> None:
    from app.devices.services import sweep_expired_sessions

    with app.app_context():
        run_forever(poll_seconds, chores=[sweep_expired_sessions])
