"""The clients an account has authorized, as their owner sees them, and
"Remove access" (the cut-off itself is app.cutoff.services)."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app.cutoff.liveness import is_live, with_context
from app.cutoff.services import revoke_client_access
from app.events.services import EventTag, Who, record_event
from app.extensions import db
from app.models import Account, Client, Consent, Grant
from app.models.base import utcnow


@dataclass
class AppAccess:
    """One client with access to an account."""

    client: Client
    scopes: set[str] = field(default_factory=set)
    devices: list[str] = field(default_factory=list)
    since: datetime | None = None
    last_used_at: datetime | None = None
    grants: int = 0

    @property
    def stays_signed_in(self) -> bool:
        """offline_access: the app keeps access when the person signs out of
        Latchkey in the browser (but not when they remove it or sign out of
        all devices)."""
        return "offline_access" in self.scopes

    @property
    def scope_list(self) -> list[str]:
        order = ["openid", "profile", "email", "offline_access"]
        return sorted(
            self.scopes, key=lambda s: (order.index(s) if s in order else 9, s)
        )


def apps_with_access(account: Account) -> list[AppAccess]:
    """Every client that holds ``account``'s remembered consent or a live
    grant: what it may do (the union of their scopes), on which devices,
    since when, when it last used its access. Most recently used first.
    Two queries by the indexed account id."""
    apps: dict[str, AppAccess] = {}
    for consent, client in db.session.execute(
        select(Consent, Client)
        .join(Client, Client.client_id == Consent.client_id)
        .where(Consent.account_id == account.id)
    ):
        app = apps.setdefault(client.client_id, AppAccess(client))
        app.scopes |= set(consent.scopes or [])
        app.since = consent.updated_at
    now = utcnow()
    for grant, grant_account, device, session, client in db.session.execute(
        with_context(Grant, Client)
        .join(Client, Client.client_id == Grant.client_id)
        .where(Grant.account_id == account.id, Grant.revoked_at.is_(None))
        .order_by(Grant.created_at)
    ):
        # The one liveness rule: a session-bound grant whose session ended
        # is no access any more (OIDC Core §11).
        if not is_live(grant, grant_account, device, session, now):
            continue
        device_name = device.name
        app = apps.setdefault(client.client_id, AppAccess(client))
        app.scopes |= set(grant.scope.split())
        app.grants += 1
        if device_name not in app.devices:
            app.devices.append(device_name or "Unnamed device")
        app.since = min(filter(None, (app.since, grant.created_at)))
        app.last_used_at = max(filter(None, (app.last_used_at, grant.last_refresh_at)))
    return sorted(
        apps.values(),
        key=lambda a: a.last_used_at or a.since or datetime.min,
        reverse=True,
    )


def find_app(account: Account, client_id: str) -> AppAccess | None:
    return next(
        (a for a in apps_with_access(account) if a.client.client_id == client_id),
        None,
    )


def remove_access(account: Account, client: Client, who: Who) -> int:
    """Withdraw the client's consent and every grant it holds for
    ``account``, with the security event, in one unit of work.
    Returns how many grants were revoked."""
    revoked = revoke_client_access(account.id, client.client_id)
    record_event(
        EventTag.CONSENT_REVOKED,
        account.id,
        who,
        client_id=client.client_id,
        client=client.name,
        grants=revoked,
    )
    return revoked
