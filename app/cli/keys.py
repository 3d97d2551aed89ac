"""flask keys: the first keys (a deploy step), listing, rotation with
pre-publication, and revocation of a compromised key."""

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.cli.output import emit
from app.extensions import db
from app.keys import admin
from app.keys.admin import RotationPending, UnknownKey, ensure_keys
from app.keys.ring import SUPPORTED_ALGS
from app.models import SigningKey
from app.models.base import utcnow


def _iso(value):
    return value.isoformat() if value else None


def _as_dict(k: SigningKey) -> dict:
    now = utcnow()
    published = k.revoked_at is None and (k.expires_at is None or now < k.expires_at)
    return {
        "kid": k.kid,
        "alg": k.alg,
        "created_at": k.created_at.isoformat(),
        "activates_at": _iso(k.activates_at),
        "retired_at": _iso(k.retired_at),
        "expires_at": _iso(k.expires_at),
        "revoked_at": _iso(k.revoked_at),
        "published": published,
        "signing": published
        and k.activates_at <= now
        and (k.retired_at is None or now < k.retired_at),
    }


@click.group("keys", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@with_appcontext
def keys_cli(ctx, as_json):
    """Signing keys. Alone, `flask keys` is the deploy step that creates the
    first key of each algorithm (once, however many times or places it runs);
    run it after `flask db upgrade`, before starting the web processes."""
    if ctx.invoked_subcommand is not None:
        return
    created = ensure_keys(current_app.extensions["latchkey"].keys)
    emit([_as_dict(k) for k in created], as_json)


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def list_(as_json):
    """List signing keys, newest first."""
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
    """Publish a new key now; it starts signing after
    LATCHKEY_SIGNING_KEY_PREPUBLISH seconds, and the old one stays in the
    JWKS for LATCHKEY_SIGNING_KEY_OVERLAP after that."""
    ring = current_app.extensions["latchkey"].keys
    try:
        new = [admin.rotate(ring, a) for a in (alg or SUPPORTED_ALGS)]
    except RotationPending as exc:
        raise click.ClickException(f"a rotation is pending: {exc}") from exc
    emit([_as_dict(k) for k in new], as_json)


@keys_cli.command("revoke")
@click.argument("kid")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def revoke(kid, as_json):
    """Withdraw a compromised key at once: out of the JWKS, and tokens it
    signed fail introspection and UserInfo. If it was signing, a new key
    takes over immediately (not pre-published: relying parties refetch the
    JWKS on an unknown kid). A kid may start with "-": write
    `flask keys revoke -- KID`."""
    try:
        result = admin.revoke(current_app.extensions["latchkey"].keys, kid)
    except UnknownKey as exc:
        raise click.ClickException(f"no signing key with kid {kid}") from exc
    emit(
        {
            "revoked": _as_dict(result.key),
            "successor": _as_dict(result.successor) if result.successor else None,
        },
        as_json,
    )
