"""Cutting credentials off, at every grain, and the one test of liveness.

Every cut-off is a constant number of statements whatever the number of
tokens: a grant row, a device row, or the account's generation counter that
every session, grant and code is compared against. All are idempotent, none
commits: the caller's transaction holds the cut-off and its security event
together.
"""

from sqlalchemy import select, update

from app.extensions import db
from app.models import Account, AccountStatus, BrowserSession, Device, Grant
from app.models.base import utcnow


def grant_is_live(grant: Grant, account: Account, device: Device) -> bool:
    return (
        grant.revoked_at is None
        and grant.account_generation == account.generation
        and account.status == AccountStatus.ACTIVE
        and device.revoked_at is None
    )


def revoke_grant(grant_id: str, reason: str) -> bool:
    """Revoke one grant and so its whole refresh-token family and the access
    tokens minted from it. True if this call revoked it."""
    result = db.session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
    )
    return result.rowcount == 1


def end_session(sid: str) -> bool:
    """End one browser session (RP-initiated logout, sign-out). True if it
    was live."""
    result = db.session.execute(
        update(BrowserSession)
        .where(BrowserSession.sid == sid, BrowserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
    return result.rowcount == 1


def sign_out_device(account_id: str, device_id: str) -> bool:
    """Cut off every session and grant of one of ``account_id``'s devices.
    True if it was live."""
    now = utcnow()
    result = db.session.execute(
        update(Device)
        .where(
            Device.id == device_id,
            Device.account_id == account_id,
            Device.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    if result.rowcount != 1:
        return False
    db.session.execute(
        update(BrowserSession)
        .where(BrowserSession.device_id == device_id, BrowserSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return True


def sign_out_account(account_id: str) -> int:
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
    return old
