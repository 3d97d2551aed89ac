"""Security events: one enum of tags, one function that records them."""

import enum

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
    CODE_REPLAYED = "oauth:code:replayed"
    REFRESH_REUSED = "oauth:refresh:reused"
    GRANT_REVOKED = "oauth:grant:revoked"
    DEVICE_LINKED = "oauth:device:linked"
    PROVIDER_LINKED = "account:provider:linked"
    PROVIDER_UNLINKED = "account:provider:unlinked"


def record_event(tag: EventTag, account_id=None, ip="", user_agent="", **details):
    """Add an event to the current transaction; the caller commits."""
    device_id = details.pop("device_id", None)
    event = SecurityEvent(
        account_id=account_id,
        tag=str(tag),
        ip=ip or "",
        user_agent=(user_agent or "")[:400],
        device_id=device_id,
        details=details,
    )
    db.session.add(event)
    return event
