"""Connected devices: what can act as a person, and cutting it off."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app.cutoff.liveness import is_live, with_context
from app.cutoff.services import (
    cut_off_account,
    cut_off_device,
    end_expired_sessions,
)
from app.events.services import EventTag, Who, record_event
from app.extensions import db
from app.mail.notices import notify_signed_out_everywhere
from app.models import (
    Account,
    BrowserSession,
    Client,
    Device,
    DeviceCode,
    DeviceCodeStatus,
    Grant,
)
from app.models.base import utcnow
from app.unit_of_work import commit_early


@dataclass
class AppOnDevice:
    """A client holding a live grant on a device."""

    client_id: str
    name: str
    stays_signed_in: bool  # offline_access: outlives the browser session


@dataclass
class DeviceView:
    """One live device as its owner sees it (see connected_devices)."""

    device: Device
    last_seen_at: datetime
    apps: list[AppOnDevice] = field(default_factory=list)
    sessions: list[BrowserSession] = field(default_factory=list)

    @property
    def clients(self) -> list[str]:
        return [app.name for app in self.apps]


def connected_devices(
    account: Account, now: datetime | None = None
) -> list[DeviceView]:
    """The devices that can still act as ``account``: not signed out, with a
    live browser session or a live grant. A device whose sessions all ended
    and whose apps lost access is history, not a connected device (it shows
    in the security history). Each comes with its live sessions and the
    clients holding live grants on it; most recently seen first.

    A device approved for the device flow whose code is not collected yet
    counts as live too. Four queries, each by the indexed account id.
    """
    now = now or utcnow()
    devices = db.session.execute(
        select(Device).where(
            Device.account_id == account.id, Device.revoked_at.is_(None)
        )
    ).scalars()
    views = {d.id: DeviceView(d, last_seen_at=d.last_seen_at) for d in devices}
    for sess in db.session.execute(
        select(BrowserSession).where(
            BrowserSession.account_id == account.id,
            BrowserSession.ended_at.is_(None),
        )
    ).scalars():
        view = views.get(sess.device_id)
        if view is not None and is_live(sess, account, view.device, now=now):
            view.sessions.append(sess)
    for grant, grant_account, device, session, client_name in db.session.execute(
        with_context(Grant, Client.name)
        .join(Client, Client.client_id == Grant.client_id)
        .where(Grant.account_id == account.id, Grant.revoked_at.is_(None))
        .order_by(Grant.created_at)
    ):
        view = views.get(grant.device_id)
        if view is None or not is_live(grant, grant_account, device, session, now):
            continue
        if grant.client_id not in {a.client_id for a in view.apps}:
            view.apps.append(
                AppOnDevice(
                    grant.client_id,
                    client_name,
                    "offline_access" in grant.scope.split(),
                )
            )
        view.last_seen_at = max(view.last_seen_at, grant.last_refresh_at)
    # A TV approved at /link but not yet polling holds an approved device
    # code (RFC 8628 §3.5): it can still become signed in, so it is listed.
    pending = {
        code.device_id
        for code in db.session.execute(
            select(DeviceCode).where(
                DeviceCode.account_id == account.id,
                DeviceCode.status == DeviceCodeStatus.APPROVED,
                DeviceCode.expires_at > now,
            )
        ).scalars()
        if code.device_id in views
        and is_live(code, account, views[code.device_id].device, now=now)
    }
    live = [v for v in views.values() if v.sessions or v.apps or v.device.id in pending]
    return sorted(live, key=lambda v: v.last_seen_at, reverse=True)


EXPIRY_BATCH = 200


def sweep_expired_sessions(now: datetime | None = None) -> int:
    """End the sessions whose lifetime ran out, in batches (each committed
    early): each gets a "session expired" event and its relying parties a
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
        commit_early("expired-session sweep batch")
        swept += len(expired)
        if len(expired) < EXPIRY_BATCH:
            return swept


def find_live_device(account: Account, device_id: str) -> Device | None:
    """``account``'s device ``device_id`` if it is not signed out, else None."""
    device = db.session.get(Device, device_id)
    if device is None or device.account_id != account.id or device.revoked_at:
        return None
    return device


def rename_device(account: Account, device_id: str, name: str) -> Device | None:
    """Rename one of ``account``'s live devices; the renamed device or None
    if there is no such device."""
    device = find_live_device(account, device_id)
    if device is None:
        return None
    device.name = name.strip()[:200] or device.name
    return device


def sign_out_one_device(account: Account, device_id: str, who: Who) -> bool:
    """Sign one device out (sessions and grants) and record it, in the
    current unit of work."""
    done = cut_off_device(account.id, device_id)
    if done:
        record_event(EventTag.DEVICE_SIGNED_OUT, account.id, who, device_id=device_id)
    return done


def sign_out_everywhere(
    account: Account, who: Who, reason: str, notify: bool = True
) -> None:
    """Sign out of all devices: the cut-off (constant cost, whatever the
    number of grants), its event and (``notify``) its email, in the current
    unit of work. Password changes pass notify=False: their own email says
    so."""
    cut = cut_off_account(account.id)
    notify_signed_out_everywhere(account, who, reason, cut, email=notify)
