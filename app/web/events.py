"""Recording a security event from a web request: its IP and User-Agent go
with it, as STYLE.md asks of every event."""

from app.events.services import EventTag, record_event
from app.web.sessions import client_ip, user_agent


def record_request_event(tag: EventTag, account_id: str | None, **details):
    """record_event with this request's IP and User-Agent."""
    return record_event(
        tag, account_id, ip=client_ip(), user_agent=user_agent(), **details
    )
