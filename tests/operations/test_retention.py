"""flask maintenance purge: dead rows of every kind go, in batches, from
several purges at once; nothing live (or dead for less than the retention
time) is touched."""

import json
import secrets
import threading
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.maintenance.retention import RULES, Retention, purge
from app.models import (
    AccountLink,
    AuthorizationCode,
    BrowserSession,
    Device,
    DeviceCode,
    Grant,
    OutboxMessage,
    RefreshToken,
    RevokedAccessToken,
    SecurityEvent,
)
from app.models.base import utcnow

OLD = utcnow() - timedelta(days=40)  # past the 30-day default retention


def _h() -> str:
    return secrets.token_hex(32)


class Rows:
    """Adds rows and remembers which must survive the purge."""

    def __init__(self):
        self.dead, self.live = [], []

    def add(self, row, dead: bool):
        db.session.add(row)
        (self.dead if dead else self.live).append(row)
        return row


def _grant(rows, account_id, client_id, device_id, **values):
    return rows.add(
        Grant(
            id=secrets.token_hex(16),
            account_id=account_id,
            client_id=client_id,
            device_id=device_id,
            account_generation=0,
            **values,
        ),
        dead=False,  # grants themselves are not purged
    )


def _token(rows, grant, seq, created_at, dead):
    return rows.add(
        RefreshToken(
            token_hash=_h(), grant_id=grant.id, seq=seq, created_at=created_at
        ),
        dead,
    )


def _code(rows, account_id, client_id, device_id, dead, **values):
    return rows.add(
        AuthorizationCode(
            code_hash=_h(),
            client_id=client_id,
            account_id=account_id,
            device_id=device_id,
            account_generation=0,
            redirect_uri="http://127.0.0.1:8765/callback",
            auth_time=utcnow(),
            **values,
        ),
        dead,
    )


def _make_rows(account_id, client_id) -> Rows:
    # Read the clock now, not at import: rows "live for five more minutes"
    # must still be live when the purge runs.
    now = utcnow()
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    rows = Rows()
    device = rows.add(Device(account_id=account_id, name="Laptop"), dead=False)
    db.session.flush()
    d = device.id
    # Codes: expired long ago (used or not) go; live or recently used stay.
    _code(rows, account_id, client_id, d, True, expires_at=old, used_at=old)
    _code(rows, account_id, client_id, d, True, expires_at=old)
    _code(rows, account_id, client_id, d, False, expires_at=now + timedelta(60))
    _code(rows, account_id, client_id, d, False, expires_at=recent, used_at=recent)
    # Refresh tokens of a live grant rotating hourly: rotated out more than
    # a day ago goes; the one rotated out an hour ago (reuse detection) and
    # the live one stay.
    live = _grant(rows, account_id, client_id, d, live_seq=2, last_refresh_at=now)
    _token(rows, live, 0, now - timedelta(days=3), dead=True)
    _token(rows, live, 1, now - timedelta(days=2), dead=False)
    _token(rows, live, 2, now - timedelta(hours=1), dead=False)
    # A grant revoked long ago, one revoked yesterday, one idle past its
    # lifetime plus the retention, one that started long ago but is live.
    old_revoked = _grant(rows, account_id, client_id, d, revoked_at=old)
    _token(rows, old_revoked, 0, old, dead=True)
    new_revoked = _grant(rows, account_id, client_id, d, revoked_at=recent)
    _token(rows, new_revoked, 0, old, dead=False)
    idle = _grant(
        rows, account_id, client_id, d, last_refresh_at=now - timedelta(days=61)
    )
    _token(rows, idle, 0, now - timedelta(days=61), dead=True)
    long_lived = _grant(
        rows, account_id, client_id, d, created_at=old, last_refresh_at=recent
    )
    _token(rows, long_lived, 0, recent, dead=False)
    # Revoked jti rows: only while the access token could still be shown.
    rows.add(RevokedAccessToken(jti=_h(), expires_at=now - timedelta(seconds=5)), True)
    rows.add(RevokedAccessToken(jti=_h(), expires_at=now + timedelta(minutes=5)), False)
    # Device codes.
    for expires, dead in ((old, True), (now + timedelta(minutes=10), False)):
        rows.add(
            DeviceCode(
                device_code_hash=_h(),
                user_code_hash=_h(),
                client_id=client_id,
                expires_at=expires,
            ),
            dead,
        )
    # Emailed links: used or expired long ago go; live or recently used stay.
    for used, expires, dead in (
        (old, now + timedelta(days=1), True),
        (None, old, True),
        (None, now + timedelta(minutes=30), False),
        (recent, now + timedelta(minutes=30), False),
    ):
        rows.add(
            AccountLink(
                token_hash=_h(),
                account_id=account_id,
                purpose="reset_password",
                used_at=used,
                expires_at=expires,
            ),
            dead,
        )
    # Browser sessions: ended or expired long ago go.
    for ended, expires, dead in (
        (old, now + timedelta(days=1), True),
        (None, old, True),
        (None, now + timedelta(days=1), False),
        (recent, now + timedelta(days=1), False),
    ):
        rows.add(
            BrowserSession(
                id_hash=_h(),
                account_id=account_id,
                device_id=d,
                account_generation=0,
                expires_at=expires,
                ended_at=ended,
            ),
            dead,
        )
    # Outbox: sent long ago goes; sent recently or never sent stays.
    for sent, dead in ((old, True), (recent, False), (None, False)):
        rows.add(
            OutboxMessage(kind="email", payload={}, sent_at=sent, created_at=old),
            dead,
        )
    # Security events: a year's history is kept.
    for created, dead in ((now - timedelta(days=400), True), (old, False)):
        rows.add(
            SecurityEvent(account_id=account_id, tag="account:login:success",
                          created_at=created),
            dead,
        )  # fmt: skip
    db.session.commit()
    rows.dead = [_key(r) for r in rows.dead]
    rows.live = [_key(r) for r in rows.live]
    return rows


def _key(row) -> tuple:
    """(primary key column, value): a row's identity that outlives it."""
    key = type(row).__mapper__.primary_key[0]
    return key, getattr(row, key.key)


def _exists(identity) -> bool:
    key, value = identity
    return (
        db.session.execute(
            select(func.count()).select_from(key.table).where(key == value)
        ).scalar_one()
        == 1
    )


def test_purge_removes_dead_rows_of_every_kind_and_nothing_live(app, factories):
    account = factories.account()
    client = factories.client()
    with app.app_context():
        rows = _make_rows(account.id, client.client_id)
        assert all(_exists(r) for r in rows.dead + rows.live)

        result = app.test_cli_runner().invoke(
            args=["maintenance", "purge", "--batch-size", "1", "--json"]
        )
        assert result.exit_code == 0, result.output + repr(result.exception)
        removed = json.loads(result.stdout)
        db.session.expire_all()
        gone = [r for r in rows.dead if not _exists(r)]
        kept = [r for r in rows.live if _exists(r)]
        assert gone == rows.dead
        assert kept == rows.live
        # Every kind of row the issue names has a rule, and each one worked.
        assert set(removed) == set(RULES)
        by_table = dict.fromkeys(RULES, 0)
        for key, _ in rows.dead:
            by_table[key.table.name] += 1
        assert removed == by_table
        # A second run finds nothing.
        again = app.test_cli_runner().invoke(args=["maintenance", "purge", "--json"])
        assert set(json.loads(again.stdout).values()) == {0}
        db.session.remove()


def test_several_purges_at_once_share_the_work(app):
    settings = app.extensions["latchkey"].settings
    retention = Retention.from_settings(settings)
    with app.app_context():
        for _ in range(60):
            db.session.add(OutboxMessage(kind="email", payload={}, sent_at=OLD))
        db.session.commit()
        db.session.remove()
    totals, errors = [], []
    start = threading.Barrier(3)

    def run():
        with app.app_context():
            try:
                start.wait()
                totals.append(purge(retention, batch_size=5)["outbox"])
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sum(totals) == 60
    with app.app_context():
        assert db.session.execute(select(func.count(OutboxMessage.id))).scalar() == 0
        db.session.remove()


def test_max_batches_bounds_one_run(app):
    retention = Retention.from_settings(app.extensions["latchkey"].settings)
    with app.app_context():
        for _ in range(7):
            db.session.add(OutboxMessage(kind="email", payload={}, sent_at=OLD))
        db.session.commit()
        assert purge(retention, batch_size=2, max_batches=2)["outbox"] == 4
        assert purge(retention, batch_size=2)["outbox"] == 3
        db.session.remove()
