import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.cli.output import emit
from app.extensions import db
from app.models import SigningKey
from app.oauth.keys import SUPPORTED_ALGS

keys_cli = click.Group("keys", help="Signing keys.")


def _as_dict(k: SigningKey) -> dict:
    return {
        "kid": k.kid,
        "alg": k.alg,
        "created_at": k.created_at.isoformat(),
        "retired_at": k.retired_at.isoformat() if k.retired_at else None,
        "expires_at": k.expires_at.isoformat() if k.expires_at else None,
        "signing": k.retired_at is None,
    }


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def list_(as_json):
    """List signing keys, newest first."""
    current_app.extensions["latchkey"].keys.ensure_keys()
    rows = db.session.execute(
        select(SigningKey).order_by(SigningKey.id.desc())
    ).scalars()
    emit([_as_dict(k) for k in rows], as_json)


@keys_cli.command("rotate")
@click.option(
    "--alg",
    type=click.Choice(SUPPORTED_ALGS),
    multiple=True,
    help="Which algorithm's key (default: all).",
)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def rotate(alg, as_json):
    """Start signing with a new key; the old one stays in the JWKS until it
    expires (LATCHKEY_SIGNING_KEY_OVERLAP)."""
    ring = current_app.extensions["latchkey"].keys
    ring.ensure_keys()
    new = [ring.rotate(a) for a in (alg or SUPPORTED_ALGS)]
    emit([_as_dict(k) for k in new], as_json)
