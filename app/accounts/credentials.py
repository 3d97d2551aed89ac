"""Setting a password (reset, change, first password of an SSO-only account),
with the option to sign out every connected device at the same time."""

from flask import current_app
from sqlalchemy import update

from app.devices import services as devices
from app.events.services import Who
from app.extensions import db
from app.mail.notices import notify_password_changed
from app.models import Account, AccountLink, LinkPurpose
from app.models.base import utcnow
from app.security.password_policy import password_problems
from app.security.passwords import PasswordService


class WeakPassword(ValueError):
    """The password breaks the policy; ``problems`` says why in plain words."""

    def __init__(self, problems: list[str]):
        super().__init__(" ".join(problems))
        self.problems = problems


def check_new_password(account_email: str, name: str, password: str) -> None:
    """Raise WeakPassword unless ``password`` meets the policy
    (app/security/password_policy.py, LATCHKEY_PASSWORD_MIN_*)."""
    settings = current_app.config["LATCHKEY"]
    problems = password_problems(
        password,
        account_email,
        name,
        settings.password_min_length,
        settings.password_min_score,
    )
    if problems:
        raise WeakPassword(problems)


def new_password_hash(
    passwords: PasswordService, account_email: str, name: str, password: str
) -> str:
    """The argon2id hash to store for a password being set, checked against
    the policy first: every place that sets a password (sign-up, reset,
    change, `flask users create`, the demo account) goes through here, so
    each refuses the same passwords with the same words. Raises
    WeakPassword."""
    check_new_password(account_email, name, password)
    return passwords.hash(password)


def set_password(
    account: Account,
    password: str,
    sign_out_everywhere: bool,
    who: Who,
    how: str,
) -> None:
    """Store a new password and tell the owner.

    With ``sign_out_everywhere`` every session, grant, token and pending code
    of the account is cut off in the same transaction (one row update).
    Raises WeakPassword.
    """
    passwords = current_app.extensions["latchkey"].passwords
    password_hash = new_password_hash(passwords, account.email, account.name, password)
    now = utcnow()
    account.password_hash = password_hash
    account.password_changed_at = now
    account.must_reset_password = False
    # Any reset link still in a mailbox dies with the old password.
    db.session.execute(
        update(AccountLink)
        .where(
            AccountLink.account_id == account.id,
            AccountLink.purpose == LinkPurpose.RESET_PASSWORD,
            AccountLink.used_at.is_(None),
        )
        .values(used_at=now)
    )
    notify_password_changed(account, who, how, sign_out_everywhere)
    if sign_out_everywhere:
        devices.sign_out_everywhere(
            account, who, reason=f"password_{how}", notify=False
        )
    db.session.refresh(account)
