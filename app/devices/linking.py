"""The device flow's verification page, as a service: a person signed in at
/link approves or denies a device's request by the user code it shows
(RFC 8628 §3.3). The protocol side (issuing and polling device codes) is
app/oauth/device_flow.py."""

from typing import Any

from sqlalchemy import select, update

from app.extensions import db
from app.models import Account, Client, Device, DeviceCode
from app.models.base import claim_once, utcnow
from app.models.device_code import DeviceCodeStatus
from app.security.opaque_tokens import hash_token

# RFC 8628 §6.1: consonants only, no vowels (no words), no lookalikes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def normalize_user_code(raw: str) -> str:
    """What a person typed, reduced to the code's letters (RFC 8628 §6.1:
    ignore case and punctuation)."""
    return "".join(c for c in (raw or "").upper() if c in USER_CODE_ALPHABET)[:16]


class UnknownUserCode(Exception):
    """No pending, unexpired device code matches what was typed."""


def find_pending(user_code: str) -> tuple[DeviceCode, Client]:
    """The pending request behind a typed user code. Raises UnknownUserCode."""
    code = normalize_user_code(user_code)
    if len(code) != 8:
        raise UnknownUserCode
    row = db.session.execute(
        select(DeviceCode, Client)
        .join(Client, Client.client_id == DeviceCode.client_id)
        .where(DeviceCode.user_code_hash == hash_token(code))
    ).first()
    if row is None:
        raise UnknownUserCode
    device_code, client = row
    if (
        device_code.status != DeviceCodeStatus.PENDING
        or device_code.expires_at <= utcnow()
    ):
        raise UnknownUserCode
    return device_code, client


def decide(
    user_code: str,
    account: Account,
    approve: bool,
    session_auth_time,
    amr,
    acr,
    ip: str,
) -> Device | None:
    """Approve (making the device) or deny a pending request.

    Returns the new device on approval. Raises UnknownUserCode if the code is
    no longer pending (used, expired, or decided in another tab).
    """
    device_code, _client = find_pending(user_code)
    now = utcnow()
    device = None
    values: dict[str, Any] = {
        "status": DeviceCodeStatus.DENIED,
        "account_id": account.id,
    }
    if approve:
        device = Device(
            account_id=account.id,
            kind="device",
            name=device_code.device_name,
            first_seen_at=now,
            last_seen_at=now,
            last_ip=ip,
        )
        db.session.add(device)
        db.session.flush()
        values = {
            "status": DeviceCodeStatus.APPROVED,
            "account_id": account.id,
            "account_generation": account.generation,
            "device_id": device.id,
            "auth_time": session_auth_time,
            "amr": amr,
            "acr": acr,
        }
    decided = claim_once(
        update(DeviceCode)
        .where(
            DeviceCode.device_code_hash == device_code.device_code_hash,
            DeviceCode.status == DeviceCodeStatus.PENDING,
        )
        .values(**values)
    )
    if not decided:
        db.session.rollback()
        raise UnknownUserCode
    return device
