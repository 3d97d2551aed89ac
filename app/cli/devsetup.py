"""Demo data for the trial: only in development, only on an empty database."""

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from app.accounts.services import create_account
from app.clients.services import create_client
from app.extensions import db
from app.models import Account

DEMO_EMAIL = "demo@example.com"
DEMO_REDIRECT = "http://127.0.0.1:8000/callback"


@click.command("dev-setup")
@with_appcontext
def dev_setup_command():
    """Create signing keys (the deploy step `flask keys`, if it has not run);
    in development on an empty database, also a demo account and client, and
    print how to use them."""
    services = current_app.extensions["latchkey"]
    services.keys.ensure_keys()
    settings = services.settings
    if not settings.is_development or not settings.demo_data:
        return
    if db.session.execute(select(func.count(Account.id))).scalar_one():
        click.echo("Database already has accounts; no demo data created.")
        return
    password = secrets.token_urlsafe(12)
    create_account(
        services.passwords,
        DEMO_EMAIL,
        password,
        name="Demo Person",
        email_verified=True,
    )
    client, secret = create_client("Demo app", [DEMO_REDIRECT], client_id="demo-app")
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": DEMO_REDIRECT,
            "scope": "openid profile email offline_access",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    click.echo(f"""
Latchkey development demo (shown once; only hashes are stored)
  account:        {DEMO_EMAIL}
  password:       {password}
  client_id:      {client.client_id}
  client_secret:  {secret}
  redirect_uri:   {DEMO_REDIRECT}
  code_verifier:  {verifier}
  authorize URL:  {settings.issuer}/authorize?{query}
""")
