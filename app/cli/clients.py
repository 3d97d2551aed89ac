import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.output import emit
from app.clients.services import (
    GRANT_TYPES,
    InvalidClientMetadata,
    client_as_dict,
    create_client,
    delete_client,
    list_clients,
    set_id_token_alg,
    update_client,
)
from app.config import MAX_REFRESH_GRACE_SECONDS
from app.extensions import db
from app.keys.ring import DEFAULT_ALG, SUPPORTED_ALGS
from app.models import Client

clients_cli = click.Group("clients", help="Register and manage OAuth clients.")

GRACE_HELP = (
    "Seconds in which a retry of the refresh token just rotated gets the same "
    "successor (two tabs, a lost response); 0: any replay is reuse and ends "
    "the grant. Default: LATCHKEY_REFRESH_GRACE_SECONDS."
)


@clients_cli.command("create")
@click.argument("name")
@click.option(
    "--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI."
)
@click.option(
    "--public", is_flag=True, help="No secret (SPA, mobile, CLI); PKCE required."
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(GRANT_TYPES),
    help="Default: authorization_code, refresh_token.",
)
@click.option("--scope", "scopes", multiple=True, help="Allowed scopes (default: all).")
@click.option("--first-party", is_flag=True, help="Skip the consent page.")
@click.option("--pkce-exempt", is_flag=True, help="Confidential client may skip PKCE.")
@click.option("--may-introspect", is_flag=True, help="A resource server.")
@click.option(
    "--id-token-alg",
    default=DEFAULT_ALG,
    show_default=True,
    type=click.Choice(SUPPORTED_ALGS),
    help="id_token_signed_response_alg (OIDC Dynamic Client Registration §2).",
)
@click.option("--backchannel-logout-uri", default=None)
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True)
@click.option("--client-id", default=None, help="Choose the id (default: random).")
@click.option(
    "--refresh-grace-seconds",
    type=click.IntRange(0, MAX_REFRESH_GRACE_SECONDS),
    default=None,
    help=GRACE_HELP,
)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def create(
    name,
    redirect_uris,
    public,
    grant_types,
    scopes,
    first_party,
    pkce_exempt,
    may_introspect,
    id_token_alg,
    backchannel_logout_uri,
    post_logout,
    client_id,
    refresh_grace_seconds,
    as_json,
):
    """Register a client. A confidential client's secret is printed once."""
    try:
        client, secret = create_client(
            name,
            redirect_uris,
            public=public,
            grant_types=grant_types or None,
            scopes=scopes or None,
            first_party=first_party,
            pkce_exempt=pkce_exempt,
            may_introspect=may_introspect,
            id_token_alg=id_token_alg,
            backchannel_logout_uri=backchannel_logout_uri,
            post_logout_redirect_uris=post_logout,
            client_id=client_id,
            refresh_grace_seconds=refresh_grace_seconds,
            production=current_app.config["LATCHKEY"].is_production,
        )
    except InvalidClientMetadata as exc:
        raise click.UsageError(str(exc)) from exc
    data = client_as_dict(client)
    data["client_secret"] = secret
    emit(data, as_json)
    if secret and not as_json:
        click.echo("\nStore the secret now: Latchkey keeps only its hash.", err=True)


@clients_cli.command("update")
@click.argument("client_id")
@click.option(
    "--refresh-grace-seconds",
    type=click.IntRange(0, MAX_REFRESH_GRACE_SECONDS),
    default=None,
    help=GRACE_HELP,
)
@click.option(
    "--default-refresh-grace",
    is_flag=True,
    help="Back to LATCHKEY_REFRESH_GRACE_SECONDS.",
)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def update(client_id, refresh_grace_seconds, default_refresh_grace, as_json):
    """Change a registered client's settings."""
    if default_refresh_grace and refresh_grace_seconds is not None:
        raise click.UsageError(
            "--refresh-grace-seconds and --default-refresh-grace exclude each other"
        )
    changes = {}
    if default_refresh_grace:
        changes["refresh_grace_seconds"] = None
    elif refresh_grace_seconds is not None:
        changes["refresh_grace_seconds"] = refresh_grace_seconds
    if not changes:
        raise click.UsageError("nothing to change")
    try:
        client = update_client(client_id, **changes)
    except LookupError as exc:
        raise click.ClickException(f"no client with id {client_id}") from exc
    except InvalidClientMetadata as exc:
        raise click.UsageError(str(exc)) from exc
    emit(client_as_dict(client), as_json)


@clients_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def list_(as_json):
    """List clients."""
    emit([client_as_dict(c) for c in list_clients()], as_json)


@clients_cli.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def show(client_id, as_json):
    """Show one client (never its secret)."""
    client = db.session.get(Client, client_id)
    if client is None:
        raise click.ClickException(f"no client with id {client_id}")
    emit(client_as_dict(client), as_json)


@clients_cli.command("set-id-token-alg")
@click.argument("client_id")
@click.argument("alg", type=click.Choice(SUPPORTED_ALGS))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def set_id_token_alg_(client_id, alg, as_json):
    """Change the algorithm a client's ID and logout tokens are signed with."""
    try:
        client = set_id_token_alg(client_id, alg)
    except InvalidClientMetadata as exc:
        raise click.ClickException(str(exc)) from exc
    emit(client_as_dict(client), as_json)


@clients_cli.command("delete")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_appcontext
def delete(client_id, yes):
    """Delete a client and every grant and token it holds."""
    if not yes:
        click.confirm(f"Delete client {client_id} and all its grants?", abort=True)
    if not delete_client(client_id):
        raise click.ClickException(f"no client with id {client_id}")
    click.echo(f"deleted {client_id}")
