"""flask maintenance: scheduled upkeep (purging dead rows)."""

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.output import emit
from app.maintenance.retention import BATCH_SIZE, Retention, purge

maintenance_cli = click.Group("maintenance", help="Scheduled upkeep.")


@maintenance_cli.command("purge")
@click.option(
    "--batch-size",
    default=BATCH_SIZE,
    show_default=True,
    type=click.IntRange(min=1, max=100_000),
    help="Rows deleted per statement (and per commit).",
)
@click.option(
    "--max-batches",
    type=click.IntRange(min=1),
    help="Stop each table after this many batches (the rest waits for the next run).",
)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def purge_command(batch_size, max_batches, as_json):
    """Delete rows dead for longer than the retention settings: used and
    expired codes, dead refresh tokens, expired revoked-jti rows, finished
    device codes, used links, ended sessions, sent outbox rows, old events.
    Schedule it (a CronJob); several at once are safe."""
    retention = Retention.from_settings(current_app.extensions["latchkey"].settings)
    removed = purge(retention, batch_size=batch_size, max_batches=max_batches)
    emit(removed, as_json)
