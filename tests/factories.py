"""Plain factory functions for accounts and clients, with traits as flags."""

import secrets
from dataclasses import dataclass

from app.accounts.services import create_account
from app.clients.services import create_client
from app.extensions import db


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
        password = password or "correct horse battery " + secrets.token_hex(2)
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
        redirect_uri="http://127.0.0.1:8765/callback",
        public=False,
        first_party=False,
        **options,
    ) -> MadeClient:
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
