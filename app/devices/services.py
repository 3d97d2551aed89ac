"""Connected devices: what can act as a person, and cutting it off."""

from dataclasses import dataclass, field

from sqlalchemy import select

from app.events.services import EventTag, record_event
from app.extensions import db
from app.mail.services import queue_email
from app.models import Account, Client, Device, Grant
from app.revocation.services import sign_out_account, sign_out_device


@dataclass
class DeviceView:
    device: Device
    clients: list[str] = field(default_factory=list)


def connected_devices(account: Account) -> list[DeviceView]:
    """Live devices of ``account``, newest activity first, each with the
    names of the clients holding live grants on it (two queries)."""
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
        .where(
            Grant.account_id == account.id,
            Grant.revoked_at.is_(None),
            Grant.account_generation == account.generation,
        )
        .distinct()
    ).all()
    for device_id, client_name in rows:
        if device_id in views:
            views[device_id].clients.append(client_name)
    return list(views.values())


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
