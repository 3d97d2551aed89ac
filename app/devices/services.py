"""Connected devices: what can act as a person, and cutting it off."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from app.events.services import EventTag, record_event
from app.extensions import db
from app.mail.services import queue_email
from app.models import Account, BrowserSession, Client, Device, Grant, SessionEnd
from app.models.base import utcnow
from app.revocation.services import (
    end_expired_sessions,
    session_is_live,
    sign_out_account,
    sign_out_device,
)


@dataclass
class DeviceView:
    device: Device
    clients: list[str] = field(default_factory=list)
    # The browser's latest session in plain words ("Signed in", "Signed out
    # from Photo App", "Session expired"), and when it ended; None if the
    # device never had one (a TV or an app linked by code).
    session_state: str | None = None
    session_ended_at: datetime | None = None


SESSION_END_WORDS = {
    SessionEnd.LOGOUT: "Signed out",
    SessionEnd.RP_LOGOUT: "Signed out from {client}",
    SessionEnd.EXPIRED: "Session expired",
    SessionEnd.UPSTREAM_LOGOUT: "Signed out by your sign-in provider",
    SessionEnd.REPLACED: "Signed out: signed in again",
    SessionEnd.ACCOUNT_SIGNED_OUT: "Signed out of all devices",
    SessionEnd.DEVICE_SIGNED_OUT: "Device signed out",
}


def connected_devices(account: Account) -> list[DeviceView]:
    """Live devices of ``account``, newest activity first, each with the
    names of the clients holding live grants on it and how its latest
    session stands (three queries)."""
    devices = (
        db.session.execute(
            select(Device)
            .where(Device.account_id == account.id, Device.revoked_at.is_(None))
            .order_by(Device.last_seen_at.desc())
        )
        .scalars()
        .all()
    )
    views = {d.id: DeviceView(d) for d in devices}
    rows = db.session.execute(
        select(Grant.device_id, Client.name)
        .join(Client, Client.client_id == Grant.client_id)
        .outerjoin(BrowserSession, BrowserSession.sid == Grant.session_sid)
        .where(
            Grant.account_id == account.id,
            Grant.revoked_at.is_(None),
            Grant.account_generation == account.generation,
            # A session-bound grant is gone with its session.
            Grant.session_bound.is_(False)
            | (
                BrowserSession.ended_at.is_(None)
                & (BrowserSession.expires_at > utcnow())
            ),
        )
        .distinct()
    ).all()
    for device_id, client_name in rows:
        if device_id in views:
            views[device_id].clients.append(client_name)
    _add_session_states(account, views)
    return list(views.values())


def _add_session_states(account: Account, views: dict[str, DeviceView]) -> None:
    """Each device's latest session, and how it ended (one query)."""
    latest = (
        select(
            BrowserSession.device_id,
            func.max(BrowserSession.created_at).label("created_at"),
        )
        .where(BrowserSession.account_id == account.id)
        .group_by(BrowserSession.device_id)
        .subquery()
    )
    rows = db.session.execute(
        select(BrowserSession, Client.name)
        .join(
            latest,
            (BrowserSession.device_id == latest.c.device_id)
            & (BrowserSession.created_at == latest.c.created_at),
        )
        .outerjoin(Client, Client.client_id == BrowserSession.ended_by_client_id)
        .where(BrowserSession.account_id == account.id)
    ).all()
    now = utcnow()
    for session, client_name in rows:
        view = views.get(session.device_id)
        if view is not None:
            view.session_state, view.session_ended_at = _session_words(
                session, client_name, account, now
            )


def _session_words(session, client_name, account, now):
    if session_is_live(session, account, now):
        return "Signed in", None
    if session.ended_at is None and session.expires_at <= now:
        return SESSION_END_WORDS[SessionEnd.EXPIRED], session.expires_at
    if session.ended_at is None:  # cut off by "sign out of all devices"
        return SESSION_END_WORDS[SessionEnd.ACCOUNT_SIGNED_OUT], None
    words = SESSION_END_WORDS.get(session.end_cause, "Signed out")
    return words.format(client=client_name or "an app"), session.ended_at


EXPIRY_BATCH = 200


def sweep_expired_sessions(now: datetime | None = None) -> int:
    """End the sessions whose lifetime ran out, in batches (one commit
    each): each gets a "session expired" event and its relying parties a
    back-channel logout. A chore of the outbox worker. Returns how many."""
    swept = 0
    while True:
        expired = end_expired_sessions(now or utcnow(), EXPIRY_BATCH)
        for session in expired:
            record_event(
                EventTag.SESSION_EXPIRED,
                session.account_id,
                device_id=session.device_id,
                sid=session.sid,
            )
        db.session.commit()
        swept += len(expired)
        if len(expired) < EXPIRY_BATCH:
            return swept


def rename_device(account: Account, device_id: str, name: str) -> bool:
    device = db.session.get(Device, device_id)
    if device is None or device.account_id != account.id or device.revoked_at:
        return False
    device.name = name.strip()[:200] or device.name
    db.session.commit()
    return True


def sign_out_one_device(account: Account, device_id: str, ip: str, ua: str) -> bool:
    """Sign one device out (sessions and grants) and record it. Commits."""
    done = sign_out_device(account.id, device_id)
    if done:
        record_event(
            EventTag.DEVICE_SIGNED_OUT,
            account.id,
            ip=ip,
            user_agent=ua,
            device_id=device_id,
        )
    db.session.commit()
    return done


def cut_off_everywhere(
    account: Account, ip: str, ua: str, reason: str, notify: bool = True
) -> None:
    """Sign out of all devices, with its event and (``notify``) its email;
    constant cost, no commit. Password changes pass notify=False: their own
    email says so."""
    cut = sign_out_account(account.id)
    record_event(
        EventTag.ALL_DEVICES_SIGNED_OUT,
        account.id,
        ip=ip,
        user_agent=ua,
        reason=reason,
        generation=cut,
    )
    if notify:
        queue_email(account.email, "signed_out_everywhere", account=account)


def sign_out_everywhere(account: Account, ip: str, ua: str, reason: str) -> None:
    """Sign out of all devices in one transaction. Commits."""
    cut_off_everywhere(account, ip, ua, reason)
    db.session.commit()
