"""Retention: which rows are dead, in one place, and their purge in bounded
batches.

"Dead" is defined conservatively: a row goes only once nothing can accept
it any more (expired by time, used, ended, revoked, sent) *and* it has been
so for longer than the retention setting, which keeps it for forensics, for
replay detection (a replayed code or refresh token found in the table still
revokes what it issued: RFC 6749 §4.1.2, RFC 9700 §4.14.2) and for the
person's security history. Nothing live is ever a candidate.

Each batch is one DELETE of at most ``batch_size`` primary keys, committed
on its own (commit_early), so a run stopped midway keeps its batches. On
PostgreSQL the keys are picked with FOR UPDATE SKIP LOCKED,
so several purges running at once (a CronJob overlapping a person) share the
work instead of queueing; on SQLite writes are serialised anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import aliased

from app.extensions import db, rowcount
from app.models import (
    AccountLink,
    AuthorizationCode,
    BrowserSession,
    DeviceCode,
    Grant,
    OutboxMessage,
    RefreshToken,
    RevokedAccessToken,
    SecurityEvent,
)
from app.models.base import utcnow
from app.unit_of_work import commit_early

BATCH_SIZE = 1000


@dataclass(frozen=True)
class Retention:
    """How long dead rows are kept (from the settings)."""

    days: int  # LATCHKEY_RETENTION_DAYS: codes, links, sessions, grants' tokens, outbox
    event_days: int  # LATCHKEY_EVENT_RETENTION_DAYS: the security history
    rotated_refresh_hours: int  # LATCHKEY_RETENTION_ROTATED_REFRESH_HOURS
    refresh_idle: int  # seconds, the refresh tokens' idle lifetime
    refresh_absolute: int  # seconds, their absolute lifetime
    refresh_grace: int  # seconds, the retry window of a rotated-out token

    @classmethod
    def from_settings(cls, s) -> Retention:
        return cls(
            s.retention_days,
            s.event_retention_days,
            s.retention_rotated_refresh_hours,
            s.refresh_token_idle_lifetime,
            s.refresh_token_absolute_lifetime,
            s.refresh_grace_seconds,
        )


# Each rule: (table's primary key column, condition that makes a row dead).
Rule = Callable[[Retention, datetime], tuple]


def _authorization_codes(r: Retention, now: datetime):
    # Used or not, a code past its expiry cannot be redeemed.
    return AuthorizationCode.code_hash, AuthorizationCode.expires_at < _ago(now, r)


def _refresh_tokens(r: Retention, now: datetime):
    cutoff = _ago(now, r)
    grant_dead = exists().where(
        Grant.id == RefreshToken.grant_id,
        or_(
            Grant.revoked_at < cutoff,
            Grant.last_refresh_at < cutoff - timedelta(seconds=r.refresh_idle),
            Grant.created_at < cutoff - timedelta(seconds=r.refresh_absolute),
        ),
    )
    # Rotated out: a later token of the grant was issued (which is when this
    # one stopped being live) long enough ago that a replay of this one no
    # longer needs to be recognised as reuse, and well past the retry window.
    successor = aliased(RefreshToken)
    kept = max(r.rotated_refresh_hours * 3600, r.refresh_grace)
    rotated_out = exists().where(
        successor.grant_id == RefreshToken.grant_id,
        successor.seq > RefreshToken.seq,
        successor.created_at < now - timedelta(seconds=kept),
    )
    return RefreshToken.token_hash, or_(grant_dead, rotated_out)


def _revoked_access_tokens(r: Retention, now: datetime):
    # The access token itself has expired: nothing will present it as live.
    return RevokedAccessToken.jti, RevokedAccessToken.expires_at < now


def _device_codes(r: Retention, now: datetime):
    # Approved, denied, used or never finished: past expiry it is over.
    return DeviceCode.device_code_hash, DeviceCode.expires_at < _ago(now, r)


def _account_links(r: Retention, now: datetime):
    cutoff = _ago(now, r)
    return AccountLink.token_hash, or_(
        AccountLink.used_at < cutoff, AccountLink.expires_at < cutoff
    )


def _browser_sessions(r: Retention, now: datetime):
    cutoff = _ago(now, r)
    return BrowserSession.id_hash, or_(
        BrowserSession.ended_at < cutoff, BrowserSession.expires_at < cutoff
    )


def _outbox(r: Retention, now: datetime):
    return OutboxMessage.id, OutboxMessage.sent_at < _ago(now, r)


def _security_events(r: Retention, now: datetime):
    return SecurityEvent.id, SecurityEvent.created_at < now - timedelta(
        days=r.event_days
    )


RULES: dict[str, Rule] = {
    "authorization_codes": _authorization_codes,
    "refresh_tokens": _refresh_tokens,
    "revoked_access_tokens": _revoked_access_tokens,
    "device_codes": _device_codes,
    "account_links": _account_links,
    "sessions": _browser_sessions,
    "outbox": _outbox,
    "security_events": _security_events,
}


def _ago(now: datetime, r: Retention) -> datetime:
    return now - timedelta(days=r.days)


def purge(
    retention: Retention,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Delete every dead row (see RULES), ``batch_size`` rows per statement,
    each batch committed early. Returns rows deleted per table.
    ``max_batches`` bounds the work per table for one run (the rest waits
    for the next run). Needs an app context; safe to run from several
    processes at once."""
    now = now or utcnow()
    removed = {}
    for name, rule in RULES.items():
        key, dead = rule(retention, now)
        removed[name] = _purge_table(key, dead, batch_size, max_batches)
    return removed


def _purge_table(key, dead, batch_size: int, max_batches: int | None) -> int:
    pick = select(key).where(dead).limit(batch_size)
    if db.session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        keys = db.session.execute(pick).scalars().all()
        if keys:
            # Counted by rowcount: on SQLite another purge may have deleted
            # some of the keys this one picked.
            total += rowcount(
                db.session.execute(
                    delete(key.class_).where(key.in_(keys)),
                    execution_options={"synchronize_session": False},
                )
            )
        commit_early("retention purge batch")
        batches += 1
        if len(keys) < batch_size:
            break
    return total
