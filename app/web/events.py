"""The request's facts as services take them (``Who``: IP, User-Agent,
device), and recording a security event from a web request with them, as
STYLE.md asks of every event."""

from app.events.services import EventTag, Who, record_event
from app.web.sessions import client_ip, user_agent


def request_who(device_id: str | None = None) -> Who:
    """This request's IP (LATCHKEY_TRUSTED_PROXIES applied) and User-Agent,
    with ``device_id`` when the person is signed in on a known device: the
    one place a web request becomes the value services are given."""
    return Who(client_ip(), user_agent(), device_id)


def record_request_event(tag: EventTag, account_id: str | None, **details):
    """record_event with this request's facts (request_who), in the
    request's unit of work."""
    return record_event(tag, account_id, who=request_who(), **details)
