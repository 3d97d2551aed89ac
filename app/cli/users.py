import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.accounts.credentials import WeakPassword
from app.accounts.lifecycle import (
    AccountDeleted,
    AccountNotActive,
    AccountNotDeactivated,
    deactivate_account,
    delete_account,
    reactivate_account,
)
from app.accounts.services import (
    AccountExists,
    InvalidEmail,
    create_account,
    find_account,
)
from app.cli.output import emit
from app.extensions import db
from app.models import Account

users_cli = click.Group("users", help="Create and inspect accounts.")


def _as_dict(a: Account) -> dict:
    return {
        "id": a.id,
        "email": a.email,
        "name": a.name,
        "status": a.status,
        "has_password": a.password_hash is not None,
        "created_at": a.created_at.isoformat(),
    }


@users_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when not given.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def create(email, name, password, as_json):
    """Create an account with a password; the password policy of the web
    forms applies, in the same words."""
    try:
        account = create_account(
            current_app.extensions["latchkey"].passwords,
            email,
            password,
            name=name,
            email_verified=True,
        )
    except InvalidEmail as exc:
        raise click.BadParameter(
            f"not an email address: {email}", param_hint="EMAIL"
        ) from exc
    except AccountExists as exc:
        raise click.ClickException(f"an account with {email} already exists") from exc
    except WeakPassword as exc:
        raise click.BadParameter(str(exc), param_hint="--password") from exc
    emit(_as_dict(account), as_json)


@users_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def list_(as_json):
    """List accounts."""
    accounts = db.session.execute(
        select(Account).order_by(Account.created_at)
    ).scalars()
    emit([_as_dict(a) for a in accounts], as_json)


@users_cli.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def show(email, as_json):
    """Show one account."""
    account = find_account(email)
    if account is None:
        raise click.ClickException(f"no account with email {email}")
    emit(_as_dict(account), as_json)


def _lifecycle_dict(a: Account) -> dict:
    return {
        **_as_dict(a),
        "deactivated_at": a.deactivated_at.isoformat() if a.deactivated_at else None,
        "deleted_at": a.deleted_at.isoformat() if a.deleted_at else None,
    }


def _existing(email: str) -> Account:
    account = find_account(email)
    if account is None:
        raise click.ClickException(f"no account with email {email}")
    return account


@users_cli.command("deactivate")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def deactivate(email, as_json):
    """Deactivate an account: sign it out everywhere, refuse every sign-in;
    its data is kept. The owner is emailed."""
    account = _existing(email)
    try:
        deactivate_account(account, by="operator")
    except (AccountNotActive, AccountDeleted) as exc:
        raise click.ClickException(f"{email} is {account.status}, not active") from exc
    emit(_lifecycle_dict(account), as_json)


@users_cli.command("reactivate")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def reactivate(email, as_json):
    """Let a deactivated account sign in again. Tokens cut off at
    deactivation stay dead."""
    account = _existing(email)
    try:
        reactivate_account(account, by="operator")
    except (AccountNotDeactivated, AccountDeleted) as exc:
        raise click.ClickException(
            f"{email} is {account.status}, not deactivated"
        ) from exc
    emit(_lifecycle_dict(account), as_json)


@users_cli.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def delete(email, yes, as_json):
    """Delete an account for good: remove its personal data, credentials,
    devices, sessions, grants and consents; keep a tombstone and the bare
    security events (tag and time). Cannot be undone."""
    account = _existing(email)
    if not yes:
        click.confirm(
            f"Delete {email} and its personal data for good?", abort=True, err=True
        )
    delete_account(account)
    emit(_lifecycle_dict(account), as_json)
