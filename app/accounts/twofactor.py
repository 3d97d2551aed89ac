"""Turning two-factor authentication (TOTP, RFC 6238) on and off, and the
recovery codes that come with it.

Enrolment is two steps. First a secret is made and stored encrypted in the
account row while ``totp_enabled_at`` stays NULL: sign-in ignores it, and a
reload of the enrolment page shows the same QR code instead of one the
authenticator app has not seen. Only a correct code from that secret turns
2FA on, and that code's time step is burned at once (RFC 6238 §5.2), so it
cannot be replayed at the next sign-in.

Every change records a security event and queues an email to the owner in
the same transaction; every function here commits.
"""

from dataclasses import dataclass

from sqlalchemy import delete, update

from app.events.services import EventTag, record_event
from app.extensions import db, rowcount
from app.mail.services import queue_email
from app.models import Account, RecoveryCode
from app.models.base import utcnow
from app.security.totp import (
    TotpService,
    new_recovery_codes,
    use_recovery_code,
)


class TotpAlreadyEnabled(Exception):
    """The account already has 2FA on."""


class TotpNotEnabled(Exception):
    """The account has no 2FA to change."""


class WrongCode(Exception):
    """The code does not match the pending secret (or another tab enabled
    2FA with it first)."""


class ProofMissing(Exception):
    """Neither the password nor an unused recovery code was given."""


@dataclass
class Who:
    """Where a change came from, for its security event."""

    ip: str = ""
    user_agent: str = ""
    device_id: str | None = None


@dataclass
class Enrolment:
    secret: str
    uri: str
    qr_svg: str


def start_enrolment(totp: TotpService, account: Account) -> Enrolment:
    """The pending secret to show, made (and committed) on first call.

    Raises TotpAlreadyEnabled.
    """
    if account.has_totp:
        raise TotpAlreadyEnabled
    if account.totp_secret_encrypted is None:
        account.totp_secret_encrypted = totp.encrypt(totp.new_secret())
        account.totp_last_step = None
        db.session.commit()
    secret = totp.decrypt(account.totp_secret_encrypted)
    uri = totp.provisioning_uri(secret, account.email)
    return Enrolment(secret, uri, totp.qr_svg(uri))


def enable_totp(totp: TotpService, account: Account, code: str, who: Who) -> list[str]:
    """Turn 2FA on if ``code`` matches the pending secret; returns the new
    recovery codes, which exist in clear only in this return value.

    Raises TotpAlreadyEnabled, or WrongCode (also when there is no pending
    secret yet).
    """
    if account.has_totp:
        raise TotpAlreadyEnabled
    blob = account.totp_secret_encrypted
    if blob is None:
        raise WrongCode
    now = utcnow()
    step = totp.matching_step(totp.decrypt(blob), code, now)
    if step is None:
        raise WrongCode
    # Conditional on the very secret that was checked and on 2FA still being
    # off, so two tabs (or processes) cannot both enable it.
    enabled = rowcount(
        db.session.execute(
            update(Account)
            .where(
                Account.id == account.id,
                Account.totp_enabled_at.is_(None),
                Account.totp_secret_encrypted == blob,
            )
            .values(totp_enabled_at=now, totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
    )
    if enabled != 1:
        db.session.rollback()
        raise WrongCode
    codes = new_recovery_codes(account)
    record_event(
        EventTag.TOTP_ENABLED,
        account.id,
        ip=who.ip,
        user_agent=who.user_agent,
        device_id=who.device_id,
    )
    queue_email(account.email, "totp_enabled", account=account, ip=who.ip)
    db.session.commit()
    db.session.refresh(account)
    return codes


def regenerate_recovery_codes(account: Account, who: Who) -> list[str]:
    """Replace every recovery code (used or not); returns the new ones.

    The caller has checked a fresh sign-in or the password. Raises
    TotpNotEnabled.
    """
    if not account.has_totp:
        raise TotpNotEnabled
    codes = new_recovery_codes(account)
    record_event(
        EventTag.RECOVERY_CODES_REGENERATED,
        account.id,
        ip=who.ip,
        user_agent=who.user_agent,
        device_id=who.device_id,
    )
    queue_email(account.email, "recovery_codes_regenerated", account=account, ip=who.ip)
    db.session.commit()
    return codes


def disable_proof(
    passwords, account: Account, password: str | None, recovery_code: str | None
) -> str:
    """Check what the person offered to turn 2FA off; returns "password" or
    "recovery_code". A recovery code is spent (in the caller's transaction).

    Removing a factor always needs a proof, however fresh the session:
    a hijacked session must not be able to strip the second factor.
    Raises ProofMissing.
    """
    if password and passwords.verify(account.password_hash, password):
        return "password"
    if recovery_code and use_recovery_code(account, recovery_code):
        return "recovery_code"
    raise ProofMissing


def disable_totp(account: Account, method: str, who: Who) -> None:
    """Turn 2FA off: the secret, its last step and every recovery code go.

    Raises TotpNotEnabled.
    """
    if not account.has_totp:
        raise TotpNotEnabled
    account.totp_secret_encrypted = None
    account.totp_enabled_at = None
    account.totp_last_step = None
    db.session.execute(
        delete(RecoveryCode).where(RecoveryCode.account_id == account.id)
    )
    record_event(
        EventTag.TOTP_DISABLED,
        account.id,
        ip=who.ip,
        user_agent=who.user_agent,
        device_id=who.device_id,
        method=method,
    )
    queue_email(
        account.email, "totp_disabled", account=account, ip=who.ip, method=method
    )
    db.session.commit()
