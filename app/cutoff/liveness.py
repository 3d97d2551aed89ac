"""THE liveness rule, written once, for every artifact that acts as a
person: browser sessions, authorization codes, grants (and so the refresh
and access tokens minted from them) and approved device codes.

Each of them records the account's ``generation`` when it is made. A row
is live while

* it is not cut off: its generation equals the account's, the account is
  active and its device is not signed out (``cut_off``), and
* its own life lasts: a session not ended nor expired, a code not used nor
  expired, a grant not revoked and, when ``session_bound``, its session
  live (OIDC Core §11: without offline_access, access ends with the
  sign-in), a device code approved and not expired (RFC 8628 §3.5).

The rule reads rows, never the database: each caller loads the artifact
with its account, device and (for a grant or code) the session its
``session_sid`` names in the one statement that fetches it (``with_context``),
so a check costs no round trip of its own (ARCHITECTURE.md "How cutting off
works").
"""

from datetime import datetime
from typing import cast

from sqlalchemy import Select, select

from app.models import (
    Account,
    AccountStatus,
    AuthorizationCode,
    BrowserSession,
    Device,
    DeviceCode,
    DeviceCodeStatus,
    Grant,
)
from app.models.base import utcnow

Artifact = BrowserSession | AuthorizationCode | Grant | DeviceCode


def cut_off(row: Artifact, account: Account | None, device: Device | None) -> bool:
    """Whether ``row`` was cut off above its own grain: its account gone,
    deactivated or signed out everywhere since the row was made (the
    generation moved past it), or its device signed out. Artifact-agnostic:
    every artifact carries ``account_id``, ``account_generation`` and
    ``device_id``."""
    return (
        account is None
        or device is None
        or row.account_id != account.id
        or row.account_generation != account.generation
        or account.status != AccountStatus.ACTIVE
        or device.revoked_at is not None
    )


def is_live(
    row: Artifact | None,
    account: Account | None,
    device: Device | None,
    session: BrowserSession | None = None,
    now: datetime | None = None,
) -> bool:
    """THE liveness rule: True if ``row`` (with its ``account`` and
    ``device``, as loaded by ``with_context``) may still act as the person
    at ``now`` (default: the current time). ``session`` is the browser
    session a grant's ``session_sid`` names (None when there is none); it
    matters only for a session-bound grant. A missing row is not live."""
    if row is None or cut_off(row, account, device):
        return False
    now = now or utcnow()
    if isinstance(row, BrowserSession):
        return row.ended_at is None and row.expires_at > now
    if isinstance(row, AuthorizationCode):
        return row.used_at is None and row.expires_at > now
    if isinstance(row, DeviceCode):
        return row.status == DeviceCodeStatus.APPROVED and row.expires_at > now
    if isinstance(row, Grant):
        return row.revoked_at is None and (
            not row.session_bound or is_live(session, account, device, now=now)
        )
    raise TypeError(f"no liveness rule for {type(row).__name__}")


def with_context(model: type[Artifact], *extra) -> Select:
    """SELECT model, Account, Device[, BrowserSession], *extra: everything
    ``is_live`` needs for a row of ``model``, in one statement, each joined
    by primary key or unique ``sid``. Grants and authorization codes come
    with the session their ``session_sid`` names (None when there is
    none); sessions and device codes without. A device code still pending
    has no account or device yet (None). Add the WHERE that picks the row.
    """
    if model is DeviceCode:
        return (
            select(DeviceCode, Account, Device, *extra)
            .outerjoin(Account, Account.id == DeviceCode.account_id)
            .outerjoin(Device, Device.id == DeviceCode.device_id)
        )
    if model is BrowserSession:
        return (
            select(BrowserSession, Account, Device, *extra)
            .join(Account, Account.id == BrowserSession.account_id)
            .join(Device, Device.id == BrowserSession.device_id)
        )
    coded = cast("type[Grant] | type[AuthorizationCode]", model)
    return (
        select(coded, Account, Device, BrowserSession, *extra)
        .join(Account, Account.id == coded.account_id)
        .join(Device, Device.id == coded.device_id)
        .outerjoin(BrowserSession, BrowserSession.sid == coded.session_sid)
    )
