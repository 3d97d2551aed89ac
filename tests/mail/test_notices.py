"""Security notices (app/mail/notices.py): each named function, called once,
records its security event (with the request's facts from ``Who``) and
queues its email in the same transaction; the email then reaches a real SMTP
server (aiosmtpd) through the outbox worker."""

import inspect
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.events.services import EventTag, Who
from app.extensions import db
from app.mail import notices
from app.models import Account, Device, OutboxMessage, SecurityEvent

WHO = Who("192.0.2.44", "NoticeTest/1.0", None)
OLD_EMAIL = "before-the-move@example.com"


@dataclass
class Case:
    call: Any  # (account, device) -> None
    tag: EventTag
    subject: str  # words of the email's subject
    details: dict
    to_old_address: bool = False


CASES = {
    "notify_new_device": Case(
        lambda a, d: notices.notify_new_device(a, d, WHO),
        EventTag.NEW_DEVICE,
        "New sign-in",
        {"name": "Notice laptop"},
    ),
    "notify_password_changed": Case(
        lambda a, d: notices.notify_password_changed(a, WHO, "change", True),
        EventTag.PASSWORD_CHANGED,
        "password was changed",
        {"how": "change", "signed_out_everywhere": True},
    ),
    "notify_password_reset_requested": Case(
        lambda a, d: notices.notify_password_reset_requested(
            a, WHO, "https://idp.example/password/reset/x", 30
        ),
        EventTag.PASSWORD_RESET_REQUESTED,
        "reset your",
        {},
    ),
    "notify_signed_out_everywhere": Case(
        lambda a, d: notices.notify_signed_out_everywhere(a, WHO, "user_request", 7),
        EventTag.ALL_DEVICES_SIGNED_OUT,
        "signed out",
        {"reason": "user_request", "generation": 7},
    ),
    "notify_totp_enabled": Case(
        lambda a, d: notices.notify_totp_enabled(a, WHO),
        EventTag.TOTP_ENABLED,
        "authentication is on",
        {},
    ),
    "notify_totp_disabled": Case(
        lambda a, d: notices.notify_totp_disabled(a, WHO, "recovery_code"),
        EventTag.TOTP_DISABLED,
        "authentication is off",
        {"method": "recovery_code"},
    ),
    "notify_recovery_codes_regenerated": Case(
        lambda a, d: notices.notify_recovery_codes_regenerated(a, WHO),
        EventTag.RECOVERY_CODES_REGENERATED,
        "recovery codes",
        {},
    ),
    "notify_deactivated": Case(
        lambda a, d: notices.notify_deactivated(a, WHO, "self", 3),
        EventTag.DEACTIVATED,
        "deactivated",
        {"by": "self", "generation": 3},
    ),
    "notify_reactivated": Case(
        lambda a, d: notices.notify_reactivated(a, WHO, "operator"),
        EventTag.REACTIVATED,
        "reactivated",
        {"by": "operator"},
    ),
    "notify_email_change_requested": Case(
        lambda a, d: notices.notify_email_change_requested(
            a, WHO, "after-the-move@example.com"
        ),
        EventTag.EMAIL_CHANGE_REQUESTED,
        "email address was requested",
        {"new_email": "after-the-move@example.com"},
    ),
    "notify_email_changed": Case(
        lambda a, d: notices.notify_email_changed(a, WHO, OLD_EMAIL),
        EventTag.EMAIL_CHANGED,
        "email address was changed",
        {"old_email": OLD_EMAIL},
        to_old_address=True,
    ),
    "notify_guessing": Case(
        lambda a, d: notices.notify_guessing(a, WHO, "password", 900, "window-1"),
        EventTag.LOGIN_THROTTLED,
        "failed sign-ins",
        {"step": "password"},
    ),
}


def test_every_notice_has_a_case_here():
    """A notice added to app/mail/notices.py gets its test below."""
    names = {
        name
        for name, value in inspect.getmembers(notices, inspect.isfunction)
        if name.startswith("notify_") and value.__module__ == notices.__name__
    }
    assert names == set(CASES)


def _made(app, factories):
    person = factories.account(name="Notice Person")
    with app.app_context():
        device = Device(account_id=person.id, name="Notice laptop")
        db.session.add(device)
        db.session.commit()
        device_id = device.id
        db.session.remove()
    return person, device_id


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_call_records_the_event_and_queues_the_email(
    name, app, factories, mail_worker, smtp_server
):
    case = CASES[name]
    person, device_id = _made(app, factories)
    with app.app_context():
        account = db.session.get(Account, person.id)
        case.call(account, db.session.get(Device, device_id))
        db.session.commit()
        (event,) = db.session.execute(
            select(SecurityEvent).where(SecurityEvent.account_id == person.id)
        ).scalars()
        (row,) = db.session.execute(select(OutboxMessage)).scalars()
        db.session.remove()
    assert event.tag == case.tag
    assert (event.ip, event.user_agent) == (WHO.ip, WHO.user_agent)
    assert event.details.items() >= case.details.items()
    if case.tag == EventTag.NEW_DEVICE:
        assert event.device_id == device_id  # the device the notice is about
    recipient = OLD_EMAIL if case.to_old_address else person.email
    assert row.kind == "email"
    assert row.payload["to"] == recipient
    assert case.subject.lower() in row.payload["subject"].lower()
    assert mail_worker() == 1
    (message,) = smtp_server.inbox.to(recipient)
    assert message["Subject"] == row.payload["subject"]


def test_someone_guessing_is_told_once_per_window(app, factories):
    person, _ = _made(app, factories)
    with app.app_context():
        account = db.session.get(Account, person.id)
        told = [
            notices.notify_guessing(account, WHO, "password", 900, window)
            for window in ("w1", "w1", "w2")
        ]
        db.session.commit()
        events = db.session.execute(
            select(SecurityEvent.tag).where(SecurityEvent.account_id == person.id)
        ).all()
        rows = db.session.execute(select(OutboxMessage.dedupe_key)).scalars().all()
        db.session.remove()
    assert told == [True, False, True]
    assert len(events) == 2
    assert sorted(rows) == [
        f"login_throttled:{person.id}:password:w1",
        f"login_throttled:{person.id}:password:w2",
    ]
