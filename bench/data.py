"""A fresh database for one benchmark run, and the rows the benchmarks need.

Clients and accounts are made with the app's own services; the refresh
chains with the app's TokenIssuer; the large accounts of the sign-out
benchmark with bulk core inserts (executemany in batches), since seeding is
not what is measured.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select, update

from app.accounts.services import create_account
from app.clients.services import create_client
from app.extensions import db
from app.keys.admin import ensure_keys
from app.models import Account, Device, Grant, RefreshToken
from app.models.base import new_id, utcnow
from app.oauth.tokens import Subject
from app.security.opaque_tokens import hash_token, new_token

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH = 5000
PASSWORD = "bench " + secrets.token_urlsafe(12)
REFRESH_SCOPE = "openid profile offline_access"


class Database:
    """A throw-away database: a temp SQLite file or a new PostgreSQL
    database ``latchkey_bench_<random>``, dropped by ``drop()``."""

    def __init__(self, kind: str, pg_admin_url: str = PG_ADMIN_URL):
        self.kind = kind
        self.pg_admin_url = pg_admin_url
        self.name = ""
        self._tmp: tempfile.TemporaryDirectory | None = None
        if kind == "sqlite":
            self._tmp = tempfile.TemporaryDirectory(prefix="latchkey_bench_")
            self.name = str(Path(self._tmp.name) / "bench.sqlite3")
            self.url = f"sqlite:///{self.name}"
        elif kind == "postgresql":
            import psycopg

            self.name = f"latchkey_bench_{secrets.token_hex(6)}"
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            base = pg_admin_url.rsplit("/", 1)[0]
            self.url = base.replace("postgresql://", "postgresql+psycopg://")
            self.url += "/" + self.name
        else:
            raise ValueError("--db must be sqlite or postgresql")

    def drop(self) -> None:
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        elif self._tmp is not None:
            self._tmp.cleanup()

    def server_version(self) -> str:
        if self.kind == "sqlite":
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self.pg_admin_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version}"


@dataclass
class Fixtures:
    """What the load generator needs to know (secrets included: the
    database only has their hashes)."""

    cc_client: tuple[str, str] = ("", "")
    rs_client: tuple[str, str] = ("", "")
    app_client: tuple[str, str] = ("", "")
    chains: list[str] = field(default_factory=list)  # one refresh token each
    signout_accounts: dict[int, dict] = field(default_factory=dict)


def migrate_and_seed(app, chains: int) -> Fixtures:
    """Schema from the migrations, signing keys, the benchmark clients and
    ``chains`` independent grants with their first refresh token."""
    from flask_migrate import upgrade

    fx = Fixtures()
    with app.app_context():
        upgrade()
        services = app.extensions["latchkey"]
        ensure_keys(services.keys)
        cc, cc_secret = create_client(
            "bench machine client", grant_types=["client_credentials"]
        )
        rs, rs_secret = create_client(
            "bench resource server",
            grant_types=["client_credentials"],
            may_introspect=True,
        )
        rp, rp_secret = create_client(
            "bench relying party",
            redirect_uris=["http://127.0.0.1:9/callback"],
            grant_types=["authorization_code", "refresh_token"],
        )
        fx.cc_client = (cc.client_id, cc_secret)
        fx.rs_client = (rs.client_id, rs_secret)
        fx.app_client = (rp.client_id, rp_secret)
        account = create_account(
            services.passwords,
            "refresh@bench.example",
            PASSWORD,
            name="Bench",
            email_verified=True,
        )
        for _ in range(chains):
            fx.chains.append(_new_chain(services.issuer, account, rp))
        db.session.commit()
    return fx


def _new_chain(issuer, account, client) -> str:
    """A grant on its own app device, made by the app's TokenIssuer; returns
    its first refresh token."""
    now = utcnow()
    device = Device(id=new_id(), account_id=account.id, kind="app", name="bench")
    db.session.add(device)
    subject = Subject(
        account=account,
        device_id=device.id,
        session_sid=None,
        auth_time=now,
        amr=["pwd"],
    )
    issuer.create_grant(subject, client, REFRESH_SCOPE, with_refresh=True)
    return subject.refresh_token


def seed_signout_account(app, grants: int, client_id: str) -> dict:
    """An account with a password and ``grants`` live grants, each on its
    own device with one refresh token, inserted in bulk. Returns its email,
    id and one of its refresh tokens (to check the cut-off)."""
    with app.app_context():
        services = app.extensions["latchkey"]
        account = create_account(
            services.passwords,
            f"signout-{grants}@bench.example",
            PASSWORD,
            email_verified=True,
        )
        db.session.commit()  # the bulk inserts below use their own connection
        account_id = account.id
        sample = None
        now = utcnow()
        with db.engine.begin() as conn:
            for start in range(0, grants, BATCH):
                size = min(BATCH, grants - start)
                devices, rows, tokens = [], [], []
                for _ in range(size):
                    device_id, grant_id, value = new_id(), new_id(), new_token()
                    sample = sample or value
                    devices.append(_device_row(device_id, account_id, now))
                    rows.append(
                        _grant_row(grant_id, account_id, client_id, device_id, now)
                    )
                    tokens.append(
                        {
                            "token_hash": hash_token(value),
                            "grant_id": grant_id,
                            "seq": 0,
                            "created_at": now,
                        }
                    )
                conn.execute(insert(Device.__table__), devices)
                conn.execute(insert(Grant.__table__), rows)
                conn.execute(insert(RefreshToken.__table__), tokens)
        # A bystander with no grants, signed out between timed runs.
        settle = create_account(
            services.passwords, f"settle-{grants}@bench.example", None
        )
        db.session.commit()
        return {
            "email": account.email,
            "account_id": account_id,
            "settle_account_id": settle.id,
            "sample_refresh_token": sample,
        }


def _device_row(device_id, account_id, now) -> dict:
    return {
        "id": device_id,
        "cookie_hash": None,
        "account_id": account_id,
        "kind": "app",
        "name": "seeded",
        "first_seen_at": now - timedelta(days=1),
        "last_seen_at": now,
        "last_ip": "127.0.0.1",
        "revoked_at": None,
    }


def _grant_row(grant_id, account_id, client_id, device_id, now) -> dict:
    return {
        "id": grant_id,
        "account_id": account_id,
        "client_id": client_id,
        "device_id": device_id,
        "session_sid": None,
        "scope": REFRESH_SCOPE,
        "account_generation": 0,  # a new account's generation: live
        "auth_time": now,
        "amr": ["pwd"],
        "acr": "0",
        "created_at": now,
        "live_seq": 0,
        "live_parent_seq": None,
        "seq_counter": 0,
        "last_refresh_at": now,
        "revoked_at": None,
        "revoke_reason": None,
    }


def revive_grants(app, account_id: str) -> None:
    """Make every grant of the account live again (untimed, between
    repetitions), so each timed sign-out cuts off all of them."""
    with app.app_context():
        generation = db.session.execute(
            select(Account.generation).where(Account.id == account_id)
        ).scalar_one()
        db.session.execute(
            update(Grant)
            .where(Grant.account_id == account_id)
            .values(account_generation=generation)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        db.session.remove()
        if db.engine.dialect.name == "sqlite":
            # Fold that big write into the database file now, or the next
            # commit (the timed sign-out) would pay for the WAL checkpoint.
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
