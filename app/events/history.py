"""An account's security history as its owner sees it: recent events, newest
first, each with a plain-words label, the device and the address."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.events.services import EventTag
from app.extensions import db
from app.models import Client, Device, SecurityEvent
from app.models.base import utcnow
from app.models.device import describe_user_agent

HISTORY_DAYS = 90
# A page, not an export: enough for months of ordinary use, bounded against
# an account under a password-guessing storm.
HISTORY_LIMIT = 300

LABELS: dict[str, str] = {  # EventTag (a StrEnum) -> label
    EventTag.SIGNED_UP: "Account created",
    EventTag.LOGIN_SUCCESS: "Signed in",
    EventTag.LOGIN_FAILURE: "Failed sign-in: wrong password",
    EventTag.LOGIN_THROTTLED: "Sign-in attempts slowed down after too many tries",
    EventTag.LOGOUT: "Signed out",
    EventTag.SESSION_EXPIRED: "Signed out: the session expired",
    EventTag.NEW_DEVICE: "Signed in from a new device",
    EventTag.DEVICE_SIGNED_OUT: "Device signed out",
    EventTag.ALL_DEVICES_SIGNED_OUT: "Signed out of all devices",
    EventTag.DEVICE_LINKED: "Device linked with a code",
    EventTag.CONSENT_GRANTED: "App given access",
    EventTag.CONSENT_REVOKED: "App access removed",
    EventTag.GRANT_REVOKED: "App access revoked",
    EventTag.CODE_REPLAYED: "App access revoked: a sign-in code was used twice",
    EventTag.REFRESH_REUSED: "App access revoked: an old token was used again",
    EventTag.PROVIDER_LINKED: "Sign-in provider linked",
    EventTag.PROVIDER_UNLINKED: "Sign-in provider unlinked",
    EventTag.SECOND_FACTOR_FAILURE: "Failed sign-in: wrong two-factor code",
    EventTag.RECOVERY_CODE_USED: "Recovery code used",
    EventTag.TOTP_ENABLED: "Two-factor authentication turned on",
    EventTag.TOTP_DISABLED: "Two-factor authentication turned off",
    EventTag.RECOVERY_CODES_REGENERATED: "New recovery codes made",
    EventTag.PASSWORD_CHANGED: "Password changed",
    EventTag.PASSWORD_RESET_REQUESTED: "Password reset link requested",
    EventTag.PASSWORD_RESET_FORCED: "Password reset required by an administrator",
    EventTag.SIGNED_OUT_FOR_INCIDENT: "Signed out of all devices by an administrator",
    EventTag.EMAIL_VERIFIED: "Email address verified",
    EventTag.EMAIL_CHANGE_REQUESTED: "Email address change requested",
    EventTag.EMAIL_CHANGED: "Email address changed",
    EventTag.DEACTIVATED: "Account deactivated",
    EventTag.REACTIVATED: "Account reactivated",
    EventTag.DELETED: "Account deleted",
    EventTag.PROFILE_UPDATED: "Name changed",
    EventTag.REAUTH_FAILURE: "Wrong password typed to confirm a change",
    EventTag.REAUTH_SUCCESS: "Confirmed it was you before a change",
    EventTag.UPSTREAM_LOGOUT: "Signed out by your sign-in provider",
    EventTag.EVERYONE_SIGNED_OUT: "Everyone signed out by an administrator",
    EventTag.KEY_CREATED: "New signing key made by an administrator",
    EventTag.KEY_REVOKED: "Signing key withdrawn by an administrator",
}

# What a person was about to do when asked to confirm it was them.
ACTIONS = {
    "sign_out_everywhere": "signing out of all devices",
    "deactivate": "deactivating the account",
    "delete": "deleting the account",
    "enable_totp": "turning on two-factor authentication",
    "disable_totp": "turning off two-factor authentication",
    "recovery_codes": "making new recovery codes",
    "change_email": "changing the email address",
    "change_password": "changing the password",
}


@dataclass
class HistoryEntry:
    tag: str
    label: str
    at: datetime
    device: str
    ip: str


def label_for(
    event: SecurityEvent,
    provider_names: dict[str, str] | None = None,
    client_names: dict[str, str] | None = None,
) -> str:
    """The event in plain words (LABELS, plus what its details add). A tag
    with no label reads "Other security change", never the raw tag;
    ``provider_names`` and ``client_names`` map provider slugs and client
    ids to the names people know."""
    label = _base_label(event, provider_names)
    client = (client_names or {}).get(str((event.details or {}).get("client_id")))
    if client and client not in label:
        label += f" ({client})" if ":" in label else f": {client}"
    return label


def _base_label(event: SecurityEvent, provider_names: dict[str, str] | None) -> str:
    label = LABELS.get(event.tag, "Other security change")
    details = event.details or {}
    provider = details.get("provider")
    if provider:
        provider = (provider_names or {}).get(provider, "your sign-in provider")
    if event.tag == EventTag.LOGIN_SUCCESS:
        if provider:
            label += f" through {provider}"
        if "mfa" in str(details.get("method", "")).split("+"):
            label += ", with two-factor authentication"
    elif event.tag == EventTag.LOGOUT and details.get("client_name"):
        # RP-Initiated Logout: the person signed out from that app.
        label += f" from {details['client_name']}"
    elif (
        event.tag in (EventTag.PROVIDER_LINKED, EventTag.PROVIDER_UNLINKED) and provider
    ):
        label += f": {provider}"
    elif event.tag == EventTag.UPSTREAM_LOGOUT and provider:
        named = details.get("provider_name")
        label = f"Signed out by {named or provider}"
    elif event.tag == EventTag.CONSENT_REVOKED and details.get("client"):
        label += f": {details['client']}"
    elif event.tag in (EventTag.REAUTH_FAILURE, EventTag.REAUTH_SUCCESS):
        if details.get("action") in ACTIONS:
            label += f" ({ACTIONS[details['action']]})"
        elif provider:
            label += f" through {provider}"
    elif details.get("method") == "recovery_code":
        label += " (confirmed with a recovery code)"
    elif details.get("by") == "operator":
        label += " by an administrator"
    return label


def security_history(
    account_id: str,
    now: datetime | None = None,
    provider_names: dict[str, str] | None = None,
) -> list[HistoryEntry]:
    """The account's events of the last HISTORY_DAYS days, newest first
    (one query; the device name comes from an outer join). Providers are
    named by ``provider_names`` (slug -> display name)."""
    since = (now or utcnow()) - timedelta(days=HISTORY_DAYS)
    rows = db.session.execute(
        select(SecurityEvent, Device.name)
        .outerjoin(Device, Device.id == SecurityEvent.device_id)
        .where(
            SecurityEvent.account_id == account_id, SecurityEvent.created_at >= since
        )
        .order_by(SecurityEvent.created_at.desc(), SecurityEvent.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    clients = _client_names({(e.details or {}).get("client_id") for e, _ in rows})
    return [
        HistoryEntry(
            tag=event.tag,
            label=label_for(event, provider_names, clients),
            at=event.created_at,
            device=_device_name(event, device_name),
            ip=event.ip,
        )
        for event, device_name in rows
    ]


def _client_names(client_ids: set) -> dict[str, str]:
    """Names of the clients the events mention (one query)."""
    ids = [str(i) for i in client_ids if i]
    if not ids:
        return {}
    return dict(
        db.session.execute(
            select(Client.client_id, Client.name).where(Client.client_id.in_(ids))
        ).all()
    )


def _device_name(event: SecurityEvent, device_name: str | None) -> str:
    if device_name:
        return device_name
    if (event.details or {}).get("name"):
        return str(event.details["name"])
    return describe_user_agent(event.user_agent) if event.user_agent else ""
