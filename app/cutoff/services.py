"""Cutting credentials off, at every grain (the rule they are checked
against is app.cutoff.liveness).

Every cut-off is a constant number of statements whatever the number of
tokens: a grant row, a session row, a device row, or the account's
generation counter that every session, grant and code is compared against.
A session-bound grant (made in a browser session without offline_access)
is live only while its session is: ending the session is one row update,
and every liveness check reads that row by its unique ``sid``. All are
idempotent and write into the request's (or command's) one unit of
work, which holds the cut-off and its security event together. A cut-off
that took effect also adds one back-channel logout row to it
(app.logout.backchannel), however much it cut off.
"""

from datetime import datetime

from sqlalchemy import delete, select, update

from app.cutoff.liveness import cut_off, is_live, with_context
from app.extensions import db, rowcount
from app.logout.backchannel import (
    queue_logout_for_account,
    queue_logout_for_device,
    queue_logout_for_everyone,
    queue_logout_for_grant,
    queue_logout_for_session,
)
from app.models import (
    Account,
    AuthorizationCode,
    BrowserSession,
    Consent,
    Device,
    DeviceCode,
    DeviceCodeStatus,
    Grant,
    SessionEnd,
)
from app.models.base import claim_once, utcnow


def sid_for_tokens(
    grant: Grant, session: BrowserSession | None, account: Account, device: Device
) -> str | None:
    """The ``sid`` a token minted now from ``grant`` may carry: its session's,
    only while that session is live (an offline_access grant outlives it)."""
    if grant.session_sid and is_live(session, account, device):
        return grant.session_sid
    return None


def revoke_grant(grant_id: str, reason: str) -> bool:
    """Revoke one grant and so its whole refresh-token family and the access
    tokens minted from it. True if this call revoked it."""
    if not claim_once(
        update(Grant)
        .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
    ):
        return False
    queue_logout_for_grant(grant_id)
    return True


def end_session(sid: str, cause: str, client_id: str | None = None) -> bool:
    """End one browser session, and with it every session-bound grant made
    in it (one row, however many grants). ``cause`` is a SessionEnd value;
    ``client_id`` the client that asked (RP-initiated logout). True if this
    call ended it; an already ended session is left as it is."""
    # RETURNING names the account for the logout notice in the same statement.
    account_id = db.session.execute(
        update(BrowserSession)
        .where(BrowserSession.sid == sid, BrowserSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_cause=cause, ended_by_client_id=client_id)
        .returning(BrowserSession.account_id)
    ).scalar_one_or_none()
    if account_id is None:
        return False
    queue_logout_for_session(sid, account_id)
    return True


def end_expired_sessions(now: datetime, limit: int) -> list[BrowserSession]:
    """Mark up to ``limit`` sessions whose lifetime ran out as ended, so
    that their relying parties hear of it (Back-Channel Logout §2.7: the
    tokens themselves are already dead by app.cutoff.liveness).

    Returns the sessions that were still signed in when they expired; those
    already cut off by their account's generation are marked silently
    (that cut-off queued its own notice).
    """
    rows = db.session.execute(
        with_context(BrowserSession)
        .where(BrowserSession.ended_at.is_(None), BrowserSession.expires_at <= now)
        .order_by(BrowserSession.expires_at)
        .limit(limit)
    ).all()
    expired = []
    for session, account, device in rows:
        # Live until its expiry unless cut off: the one rule, minus the time.
        live = not cut_off(session, account, device)
        cause = SessionEnd.EXPIRED if live else SessionEnd.ACCOUNT_SIGNED_OUT
        # Conditional on ended_at, so two sweeping workers end it once.
        ended = claim_once(
            update(BrowserSession)
            .where(BrowserSession.sid == session.sid, BrowserSession.ended_at.is_(None))
            .values(ended_at=session.expires_at, end_cause=cause)
            .execution_options(synchronize_session=False)
        )
        if ended and live:
            queue_logout_for_session(session.sid, session.account_id)
            expired.append(session)
    return expired


def cut_off_device(account_id: str, device_id: str) -> bool:
    """Cut off every session and grant of one of ``account_id``'s devices.
    True if it was live."""
    now = utcnow()
    if not claim_once(
        update(Device)
        .where(
            Device.id == device_id,
            Device.account_id == account_id,
            Device.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    ):
        return False
    db.session.execute(
        update(BrowserSession)
        .where(BrowserSession.device_id == device_id, BrowserSession.ended_at.is_(None))
        .values(ended_at=now, end_cause=SessionEnd.DEVICE_SIGNED_OUT)
    )
    queue_logout_for_device(device_id)
    return True


def cut_off_account(account_id: str) -> int:
    """Cut off every session, grant, refresh and access token, authorization
    code and device code of an account with one row update.

    Returns the generation that was cut off (the one before the bump).
    """
    old = db.session.execute(
        select(Account.generation).where(Account.id == account_id).with_for_update()
    ).scalar_one()
    db.session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(generation=Account.generation + 1)
        .execution_options(synchronize_session=False)
    )
    queue_logout_for_account(account_id, old)
    return old


def cut_off_everyone() -> int:
    """Cut off every session, grant, token and pending code of every account
    (incident response): one UPDATE of the generation counters and one
    back-channel logout row, whatever the number of accounts.

    Returns how many accounts were signed out.
    """
    result = db.session.execute(
        update(Account)
        .values(generation=Account.generation + 1)
        .execution_options(synchronize_session=False)
    )
    queue_logout_for_everyone()
    return rowcount(result)


def revoke_client_access(account_id: str, client_id: str) -> int:
    """Withdraw everything ``account_id`` gave the client ``client_id`` at
    once ("Remove access"): the remembered consent (so the next request
    asks again), every live grant with its refresh-token family and access
    tokens, codes not yet exchanged and device codes approved but not yet
    collected. One statement per table, by indexed columns; a back-channel
    logout row per revoked grant.

    Returns how many grants were revoked.
    """
    now = utcnow()
    db.session.execute(
        delete(Consent).where(
            Consent.account_id == account_id, Consent.client_id == client_id
        )
    )
    revoked = (
        db.session.execute(
            update(Grant)
            .where(
                Grant.account_id == account_id,
                Grant.client_id == client_id,
                Grant.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoke_reason="access_removed")
            .returning(Grant.id)
        )
        .scalars()
        .all()
    )
    # RFC 6749 §4.1.2: a code is only as good as the authorization behind it.
    db.session.execute(
        delete(AuthorizationCode).where(
            AuthorizationCode.account_id == account_id,
            AuthorizationCode.client_id == client_id,
            AuthorizationCode.used_at.is_(None),
        )
    )
    # RFC 8628 §3.5: the polling device is told access_denied.
    db.session.execute(
        update(DeviceCode)
        .where(
            DeviceCode.account_id == account_id,
            DeviceCode.client_id == client_id,
            DeviceCode.status == DeviceCodeStatus.APPROVED,
        )
        .values(status=DeviceCodeStatus.DENIED)
    )
    for grant_id in revoked:
        queue_logout_for_grant(grant_id)
    return len(revoked)
