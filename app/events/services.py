"""Security events: one enum of tags, one function that records them, and
the request's facts they carry (``Who``)."""

import enum
from dataclasses import dataclass

from app.extensions import db
from app.models import SecurityEvent


class EventTag(enum.StrEnum):
    LOGIN_SUCCESS = "account:login:success"
    LOGIN_FAILURE = "account:login:failure"
    LOGOUT = "account:logout"
    NEW_DEVICE = "account:device:new"
    DEVICE_SIGNED_OUT = "account:device:signed_out"
    ALL_DEVICES_SIGNED_OUT = "account:devices:signed_out_all"
    CONSENT_GRANTED = "oauth:consent:granted"
    CONSENT_REVOKED = "oauth:consent:revoked"
    CODE_REPLAYED = "oauth:code:replayed"
    REFRESH_REUSED = "oauth:refresh:reused"
    GRANT_REVOKED = "oauth:grant:revoked"
    DEVICE_LINKED = "oauth:device:linked"
    PROVIDER_LINKED = "account:provider:linked"
    SECOND_FACTOR_FAILURE = "account:2fa:failure"
    RECOVERY_CODE_USED = "account:2fa:recovery_code_used"
    TOTP_ENABLED = "account:2fa:enabled"
    TOTP_DISABLED = "account:2fa:disabled"
    RECOVERY_CODES_REGENERATED = "account:2fa:recovery_codes_regenerated"
    PASSWORD_CHANGED = "account:password:changed"
    PASSWORD_RESET_REQUESTED = "account:password:reset_requested"
    PASSWORD_RESET_FORCED = "account:password:reset_forced"
    # An SSO-only account signed out by `flask security force-password-reset
    # --sign-out`: it has no password to reset.
    SIGNED_OUT_FOR_INCIDENT = "account:devices:signed_out_incident"
    EMAIL_VERIFIED = "account:email:verified"
    EMAIL_CHANGE_REQUESTED = "account:email:change_requested"
    EMAIL_CHANGED = "account:email:changed"
    SIGNED_UP = "account:signup"
    DEACTIVATED = "account:deactivated"
    REACTIVATED = "account:reactivated"
    DELETED = "account:deleted"
    PROFILE_UPDATED = "account:profile:updated"
    LOGIN_THROTTLED = "account:login:throttled"
    REAUTH_FAILURE = "account:reauth:failure"
    REAUTH_SUCCESS = "account:reauth:success"
    UPSTREAM_LOGOUT = "account:provider:logout"
    SESSION_EXPIRED = "account:session:expired"
    EVERYONE_SIGNED_OUT = "operator:accounts:signed_out_all"
    KEY_CREATED = "operator:key:created"
    KEY_REVOKED = "operator:key:revoked"
    PROVIDER_UNLINKED = "account:provider:unlinked"


@dataclass(frozen=True)
class Who:
    """Where a change came from, as services take it: the client's IP
    address, its User-Agent and the device it signed in on (None when not
    signed in). Built from a web request by app.web.events.request_who;
    the value services pass on to events and notices, never Flask's request
    itself (STYLE.md: every event carries IP, user agent and device)."""

    ip: str = ""
    user_agent: str = ""
    device_id: str | None = None


# No request behind it: an operator's command, a worker's chore.
NOBODY = Who()


def record_event(tag: EventTag, account_id=None, who: Who = NOBODY, **details):
    """Add an event to the current transaction, with ``who``'s IP, user
    agent and device; a ``device_id`` detail names the device the event is
    about instead (the one signed out, say). Part of the current unit of
    work."""
    device_id = details.pop("device_id", who.device_id)
    event = SecurityEvent(
        account_id=account_id,
        tag=str(tag),
        ip=who.ip or "",
        user_agent=(who.user_agent or "")[:400],
        device_id=device_id,
        details=details,
    )
    db.session.add(event)
    _count(tag)
    return event


def _count(tag: EventTag) -> None:
    from app.metrics import REFRESH_REUSE, SECURITY_EVENTS

    SECURITY_EVENTS.labels(str(tag)).inc()
    if tag == EventTag.REFRESH_REUSED:
        REFRESH_REUSE.inc()
