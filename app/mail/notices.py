"""Security notices: each one a named function that records the account's
security event and queues the owner's email together, in the caller's
transaction (Warehouse's ``send_password_change_email``, meta.sr.ht's
``audit_log(..., email=True)``), so that no change can be told by mail and
missing from the history, or the other way round.

They take the request's facts as a ``Who`` (app.events.services), never
Flask's request, so services, views and commands all call them. They live
beside the mail templates because that is the lowest layer that may use
both the events and the outbox: accounts, devices, the web and the CLI can
all reach them. Each adds to the current unit of work.

Bulk notices of an incident (app/accounts/incident.py) are written set-based
by their own batch, not one call per account.
"""

from app.events.services import EventTag, Who, record_event
from app.mail.services import queue_email
from app.models import Account, Device


def notify_new_device(account: Account, device: Device, who: Who) -> None:
    """A sign-in from a device the account had not used: NEW_DEVICE and the
    "new sign-in" email naming the device and address."""
    record_event(
        EventTag.NEW_DEVICE, account.id, who, device_id=device.id, name=device.name
    )
    queue_email(account.email, "new_device", account=account, device=device, ip=who.ip)


def notify_password_changed(
    account: Account, who: Who, how: str, signed_out_everywhere: bool
) -> None:
    """A new password (``how``: "reset" or "change"): PASSWORD_CHANGED and
    its email, which also says whether every device was signed out (that
    sign-out records its own event without a second email)."""
    record_event(
        EventTag.PASSWORD_CHANGED,
        account.id,
        who,
        how=how,
        signed_out_everywhere=signed_out_everywhere,
    )
    queue_email(
        account.email,
        "password_changed",
        account=account,
        signed_out=signed_out_everywhere,
    )


def notify_password_reset_requested(
    account: Account, who: Who, link: str, minutes: int
) -> None:
    """A reset link was asked for: PASSWORD_RESET_REQUESTED and the email
    that carries the link."""
    record_event(EventTag.PASSWORD_RESET_REQUESTED, account.id, who)
    queue_email(
        account.email, "password_reset", account=account, link=link, minutes=minutes
    )


def notify_signed_out_everywhere(
    account: Account, who: Who, reason: str, generation: int, email: bool = True
) -> None:
    """Every device signed out (the account's generation bumped to
    ``generation``): ALL_DEVICES_SIGNED_OUT and, with ``email``, its email.
    A password change passes email=False: its own email says so."""
    record_event(
        EventTag.ALL_DEVICES_SIGNED_OUT,
        account.id,
        who,
        reason=reason,
        generation=generation,
    )
    if email:
        queue_email(account.email, "signed_out_everywhere", account=account)


def notify_totp_enabled(account: Account, who: Who) -> None:
    """Two-factor authentication turned on: TOTP_ENABLED and its email."""
    record_event(EventTag.TOTP_ENABLED, account.id, who)
    queue_email(account.email, "totp_enabled", account=account, ip=who.ip)


def notify_totp_disabled(account: Account, who: Who, method: str) -> None:
    """Two-factor authentication turned off, proved by ``method``
    ("password" or "recovery_code"): TOTP_DISABLED and its email."""
    record_event(EventTag.TOTP_DISABLED, account.id, who, method=method)
    queue_email(
        account.email, "totp_disabled", account=account, ip=who.ip, method=method
    )


def notify_recovery_codes_regenerated(account: Account, who: Who) -> None:
    """Every recovery code replaced: RECOVERY_CODES_REGENERATED and its
    email."""
    record_event(EventTag.RECOVERY_CODES_REGENERATED, account.id, who)
    queue_email(account.email, "recovery_codes_regenerated", account=account, ip=who.ip)


def notify_deactivated(account: Account, who: Who, by: str, generation: int) -> None:
    """The account deactivated (``by`` "self" or "operator"), everything it
    held cut off at ``generation``: DEACTIVATED and its email."""
    record_event(EventTag.DEACTIVATED, account.id, who, by=by, generation=generation)
    queue_email(account.email, "account_deactivated", account=account, by=by)


def notify_reactivated(account: Account, who: Who, by: str) -> None:
    """The account may sign in again: REACTIVATED and its email."""
    record_event(EventTag.REACTIVATED, account.id, who, by=by)
    queue_email(account.email, "account_reactivated", account=account)


def notify_email_change_requested(account: Account, who: Who, new_email: str) -> None:
    """A move to ``new_email`` was asked for: EMAIL_CHANGE_REQUESTED and the
    notice to the current address (the link goes to the new one apart)."""
    record_event(EventTag.EMAIL_CHANGE_REQUESTED, account.id, who, new_email=new_email)
    queue_email(
        account.email, "email_change_requested", account=account, new_email=new_email
    )


def notify_email_changed(account: Account, who: Who, old_email: str) -> None:
    """The account moved from ``old_email`` to its current address:
    EMAIL_CHANGED and the notice to the old address."""
    record_event(
        EventTag.EMAIL_CHANGED,
        account.id,
        who,
        old_email=old_email,
        new_email=account.email,
    )
    queue_email(
        old_email,
        "email_changed",
        account=account,
        old_email=old_email,
        new_email=account.email,
    )


def notify_guessing(
    account: Account, who: Who, step: str, window_seconds: int, window_key: str
) -> bool:
    """Someone reached a sign-in limit at ``step`` ("password" or
    "second_factor"): the "someone is guessing" email, once per window
    (``window_key`` names it: the outbox keeps one row per key), and
    LOGIN_THROTTLED with it. Returns False when this window was told
    already (nothing recorded)."""
    queued = queue_email(
        account.email,
        "login_throttled",
        dedupe_key=f"login_throttled:{account.id}:{step}:{window_key}",
        account=account,
        step=step,
        minutes=max(1, window_seconds // 60),
        ip=who.ip,
    )
    if queued is None:
        return False
    record_event(EventTag.LOGIN_THROTTLED, account.id, who, step=step)
    return True
