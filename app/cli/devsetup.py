"""Demo data for the trial: only in development. On an empty database a
demo account; always the demo relying party's client (app.web.demo) and the
URL that starts a sign-in through it."""

import secrets

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from app.accounts.credentials import new_password_hash
from app.accounts.services import create_account, find_account
from app.clients.services import create_client
from app.extensions import db
from app.keys.admin import ensure_keys
from app.models import Account, Client
from app.web.demo.views import DEMO_RP_CLIENT_ID, redirect_uri_for

DEMO_EMAIL = "demo@example.com"


@click.command("dev-setup")
@click.option("--show", is_flag=True, help="Only print how to try the demo.")
@click.option(
    "--new-password",
    is_flag=True,
    help="Give the demo account a new password and print it (it is stored "
    "only as a hash, so it cannot be shown again).",
)
@with_appcontext
def dev_setup_command(show, new_password):
    """Create signing keys (the deploy step `flask keys`, if it has not run);
    in development also the demo account (on an empty database) and the demo
    relying party, and print how to use them. Safe to run on every start:
    nothing is reset unless asked."""
    services = current_app.extensions["latchkey"]
    ensure_keys(services.keys)
    settings = services.settings
    if not settings.is_development or not settings.demo_data:
        return
    ensure_demo_client(settings.issuer)
    password = None
    empty = not db.session.execute(select(func.count(Account.id))).scalar_one()
    if empty:
        password = secrets.token_urlsafe(12)
        create_account(
            services.passwords,
            DEMO_EMAIL,
            password,
            name="Demo Person",
            email_verified=True,
        )
    elif new_password:
        password = _new_demo_password(services.passwords)
    elif not show:
        click.echo("Database already has accounts; no demo account created.")
    _print_demo(settings.issuer, password)


def ensure_demo_client(issuer: str) -> Client:
    """The demo relying party's public client (PKCE, no secret), made once."""
    client = db.session.get(Client, DEMO_RP_CLIENT_ID)
    if client is None:
        client, _ = create_client(
            "Demo app",
            [redirect_uri_for(issuer)],
            public=True,
            client_id=DEMO_RP_CLIENT_ID,
        )
    return client


def _new_demo_password(passwords) -> str | None:
    account = find_account(DEMO_EMAIL)
    if account is None:
        return None
    password = secrets.token_urlsafe(12)
    account.password_hash = new_password_hash(
        passwords, account.email, account.name, password
    )
    return password


def _print_demo(issuer: str, password: str | None) -> None:
    if password:
        secret_line = f"  password:  {password}   (shown once; only its hash is stored)"
    else:
        secret_line = (
            "  password:  set when it was created; "
            "`flask dev-setup --new-password` sets a new one"
        )
    click.echo(f"""
Latchkey development demo
  open:      {issuer}/demo/start
  account:   {DEMO_EMAIL}
{secret_line}
  The demo app signs you in, exchanges the code and shows the verified ID token.
  Your account page: {issuer}/account
""")
