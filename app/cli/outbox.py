import contextlib
import logging
import signal
import threading
from datetime import timedelta

import click
from flask.cli import with_appcontext

from app.cli.output import emit
from app.devices.services import sweep_expired_sessions
from app.outbox.services import (
    LEASE_SECONDS,
    outbox_status,
    purge_sent,
    run_forever,
    run_once,
)

outbox_cli = click.Group(
    "outbox", help="The outbox worker: back-channel logout and email deliveries."
)


@outbox_cli.command("run")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between polls.",
)
@click.option(
    "--lease",
    default=LEASE_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Seconds a claimed row is held without renewal; a crashed worker's "
    "rows come back after this.",
)
@with_appcontext
def run(once, interval, lease):
    """Deliver queued messages, retrying failures with backoff, and end
    expired sessions (so that their apps hear of it). Run as many as you
    like on PostgreSQL; on SQLite, one is enough."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if once:
        ended = sweep_expired_sessions()
        click.echo(f"ended {ended} expired sessions")
        click.echo(f"attempted {run_once(lease_seconds=lease)} deliveries")
        return
    click.echo(f"outbox worker polling every {interval} s; Ctrl-C stops it")
    # On SIGTERM (a deploy), finish the delivery in hand, hand the rest of
    # the batch back, then exit; a worker killed outright is safe too, its
    # rows come back when their (unrenewed) lease runs out.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        run_forever(
            interval, stop=stop, lease_seconds=lease, chores=[sweep_expired_sessions]
        )
    click.echo("stopped")


@outbox_cli.command("status")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def status(as_json):
    """Count messages: pending, failed (waiting to retry) and sent."""
    data = outbox_status()
    if as_json:
        emit(data, True)
        return
    for key in ("pending", "failed", "sent", "due", "oldest_unsent_age_seconds"):
        click.echo(f"{key:28} {data[key]}")
    for kind, counts in sorted(data["kinds"].items()):
        click.echo(f"  {kind:26} " + "  ".join(f"{k}={v}" for k, v in counts.items()))


@outbox_cli.command("purge")
@click.option(
    "--older-than-days",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Delete messages sent longer ago than this.",
)
@with_appcontext
def purge(older_than_days):
    """Delete old sent messages so the table stays small."""
    removed = purge_sent(timedelta(days=older_than_days))
    click.echo(f"deleted {removed} sent messages")
