"""flask security: incident response.

- ``force-password-reset``: mark accounts so that they must choose a new
  password before they get any token, optionally signing them out
  everywhere (SSO-only accounts too), and email each one a notice. Batched
  set-based (optionally several batches at once), resumable, idempotent,
  one run per incident at a time.
- ``sign-out-everyone``: cut off every session and grant of every account
  in a constant number of statements.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from app.accounts.incident import (
    BATCH_SIZE,
    BatchRunner,
    IncidentInProgress,
    InvalidIncidentName,
    Selection,
    check_incident_name,
    count_known,
    incident_lock,
    pending_batches,
)
from app.accounts.services import InvalidEmail, normalize_email
from app.cli.output import emit
from app.cutoff.services import cut_off_everyone
from app.events.services import EventTag, record_event
from app.extensions import db

security_cli = click.Group(
    "security",
    help="Incident response: forced password resets, signing everyone out.",
)

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
INTERRUPTED = 130  # the shell's code for a Ctrl-C


def read_emails(lines) -> tuple[list[str], list[str]]:
    """(normalised unique emails, lines that are not emails) of a file with
    one email per line; blank lines and # comments are skipped."""
    emails: dict[str, None] = {}
    invalid = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            emails[normalize_email(text)] = None
        except InvalidEmail:
            invalid.append(text)
    return list(emails), invalid


def _selection(everyone, emails_file, since) -> tuple[Selection, list[str]]:
    chosen = [everyone, emails_file is not None, since is not None]
    if sum(chosen) != 1:
        raise click.UsageError("give exactly one of --all, --emails-file, --since")
    if emails_file is not None:
        emails, invalid = read_emails(emails_file)
        return Selection(emails=emails), invalid
    if since is not None:
        return Selection(created_since=since.replace(tzinfo=UTC)), []
    return Selection(everyone=True), []


@security_cli.command("force-password-reset")
@click.option("--all", "everyone", is_flag=True, help="Every account.")
@click.option(
    "--emails-file",
    type=click.File("r", encoding="utf-8"),
    help="Accounts whose emails are listed, one a line.",
)
@click.option(
    "--since",
    type=click.DateTime(DATE_FORMATS),
    help="Accounts created at or after this date (UTC).",
)
@click.option(
    "--sign-out",
    is_flag=True,
    help="Also sign them out of every device and app; SSO-only accounts, "
    "which have no password to reset, are signed out and told to sign in "
    "again through their provider.",
)
@click.option(
    "--incident",
    help="Name of the incident; the notice is sent once per account and "
    "incident. Default: reset-<the --since date, or today>.",
)
@click.option(
    "--batch-size",
    default=BATCH_SIZE,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Accounts per transaction.",
)
@click.option(
    "--max-batches",
    type=click.IntRange(min=1),
    help="Stop after this many batches; run the command again to go on.",
)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Batches run side by side, each in a forked process holding one "
    "database connection (PostgreSQL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@with_appcontext
def force_password_reset(
    everyone,
    emails_file,
    since,
    sign_out,
    incident,
    batch_size,
    max_batches,
    jobs,
    as_json,
):
    """Make accounts choose a new password before they get any token, and
    email each one a notice; with --sign-out, also sign every account in the
    set out everywhere, SSO-only ones included. Safe to stop and run again:
    accounts already done for the incident are skipped, and nobody is
    signed out or emailed twice."""
    selection, invalid = _selection(everyone, emails_file, since)
    day = (since or datetime.now(UTC)).strftime("%Y-%m-%d")
    try:
        incident = check_incident_name(incident or f"reset-{day}")
    except InvalidIncidentName as exc:
        raise click.BadParameter(
            "1-100 letters, digits, '.', '-' or '_'", param_hint="--incident"
        ) from exc
    summary = {
        "incident": incident,
        "sign_out": sign_out,
        "batches": 0,
        "accounts": 0,
        "marked": 0,
        "signed_out": 0,
        "sso_only_signed_out": 0,
        "emails_queued": 0,
        "complete": False,
    }
    if selection.emails is not None:
        known = count_known(selection.emails)
        summary["unknown_emails"] = len(selection.emails) - known
        summary["invalid_lines"] = invalid
    click.echo(f"incident {incident}: forcing password resets", err=True)
    batches = pending_batches(selection, incident, batch_size, sign_out)
    runner = BatchRunner(incident, sign_out, jobs, max_batches)
    try:
        with incident_lock(incident):
            for done in runner.run(batches):
                _add(summary, done)
                click.echo(
                    f"batch {summary['batches']}: {len(done.account_ids)} accounts "
                    f"({summary['accounts']} so far, "
                    f"{summary['emails_queued']} notices queued)",
                    err=True,
                )
        summary["complete"] = not runner.stopped_early
    except IncidentInProgress:
        raise click.ClickException(
            f"another run of incident {incident} is in progress; "
            "run this one again when it has finished"
        ) from None
    except KeyboardInterrupt:
        db.session.rollback()  # the batch in progress did nothing
        click.echo("interrupted; run the same command again to go on", err=True)
        emit(summary, as_json)
        raise SystemExit(INTERRUPTED) from None
    if not summary["complete"]:
        click.echo("stopped early; run the same command again to go on", err=True)
    emit(summary, as_json)


def _add(summary: dict, done) -> None:
    summary["batches"] += 1
    summary["accounts"] += len(done.account_ids)
    summary["marked"] += done.marked
    summary["signed_out"] += done.signed_out
    summary["sso_only_signed_out"] += done.sso_only_signed_out
    summary["emails_queued"] += done.emails_queued


@security_cli.command("sign-out-everyone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--reason",
    default="incident",
    show_default=True,
    help="Recorded with the event.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@with_appcontext
def sign_out_everyone_command(yes, reason, as_json):
    """Sign every account out of every device and app at once: every
    session, grant, refresh and access token and pending code stops
    working now. People sign in again as usual."""
    if not yes:
        click.confirm(
            "Sign every account out of every device and app?", abort=True, err=True
        )
    accounts = cut_off_everyone()
    record_event(EventTag.EVERYONE_SIGNED_OUT, None, reason=reason, accounts=accounts)
    emit(
        {"accounts_signed_out": accounts, "reason": reason, "backchannel_queued": True},
        as_json,
    )
