"""Plain factory functions for accounts and clients, with traits as flags
(``client(device=True)``, ``client(machine=True, may_introspect=True)``)."""

import secrets
from dataclasses import dataclass

from app.accounts.services import create_account
from app.clients.services import create_client
from app.extensions import db

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REDIRECT_URI = "http://127.0.0.1:8765/callback"
# The redirect URI the client's kind implies: none for a device or machine.
KIND_DEFAULT = object()


@dataclass
class MadeAccount:
    id: str
    email: str
    password: str


@dataclass
class MadeClient:
    client_id: str
    secret: str | None
    redirect_uri: str


class Factories:
    def __init__(self, app):
        self.app = app

    def account(self, email=None, password=None, name="Test Person") -> MadeAccount:
        email = email or f"person-{secrets.token_hex(4)}@example.com"
        # Digits only: a hex suffix such as "5ada" can hold a name ("Ada"),
        # which the password policy refuses.
        password = password or f"correct horse battery {secrets.randbelow(10**4):04d}"
        with self.app.app_context():
            account = create_account(
                self.app.extensions["latchkey"].passwords,
                email,
                password,
                name=name,
                email_verified=True,
            )
            made = MadeAccount(account.id, account.email, password)
            db.session.commit()
            db.session.remove()
        return made

    def client(
        self,
        redirect_uri=KIND_DEFAULT,
        public=None,
        first_party=False,
        *,
        device=False,
        machine=False,
        **options,
    ) -> MadeClient:
        """Register a client; its kind is chosen by traits, as flags.

        - no trait: a confidential web app (client_secret_basic, the code
          and refresh grants, PKCE required) at ``redirect_uri``;
        - ``public``: a native or single-page app with no secret (RFC 6749
          §2.1, token_endpoint_auth_method none);
        - ``device``: a TV (RFC 8628): the device_code and refresh_token
          grants, no redirect URI, public unless ``public=False``;
        - ``machine``: a service with the client_credentials grant only
          (RFC 6749 §4.4), confidential, no redirect URI; with
          ``may_introspect=True`` a resource server (RFC 7662 §4);
        - ``first_party``: trusted, never shows the consent page;
        - ``backchannel_logout_uri``: told of logouts (Back-Channel Logout
          1.0 §2.2).

        Any other create_client option (grant_types, scopes, name ...)
        overrides what the trait sets. Raises ValueError for ``device`` and
        ``machine`` together, InvalidClientMetadata for what registration
        refuses (e.g. a public client_credentials client).
        """
        if device and machine:
            raise ValueError("a client is a device or a machine, not both")
        if device:
            options.setdefault("grant_types", [DEVICE_GRANT, "refresh_token"])
        if machine:
            options.setdefault("grant_types", ["client_credentials"])
        if redirect_uri is KIND_DEFAULT:
            redirect_uri = None if device or machine else REDIRECT_URI
        if public is None:
            public = device
        with self.app.app_context():
            client, secret = create_client(
                options.pop("name", "Test app"),
                [redirect_uri] if redirect_uri else [],
                public=public,
                first_party=first_party,
                **options,
            )
            made = MadeClient(client.client_id, secret, redirect_uri)
            db.session.commit()
            db.session.remove()
        return made
