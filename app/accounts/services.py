"""Accounts: creation and password sign-in."""

from sqlalchemy import select

from app.extensions import db
from app.models import Account, AccountStatus
from app.security.passwords import PasswordService


class AccountExists(Exception):
    """An account with that email already exists."""


class InvalidEmail(ValueError):
    """Not an email address."""


def normalize_email(email: str) -> str:
    """Emails are stored and compared trimmed and lower-cased."""
    email = (email or "").strip().lower()
    local, _, domain = email.rpartition("@")
    if not local or not domain or "." not in domain or len(email) > 320 or " " in email:
        raise InvalidEmail(email)
    if any(ord(c) < 32 or ord(c) == 127 for c in email):
        # Control characters (a NUL is refused by PostgreSQL) are no address.
        raise InvalidEmail(email)
    return email


def find_account(email: str) -> Account | None:
    try:
        email = normalize_email(email)
    except InvalidEmail:
        return None
    return db.session.execute(
        select(Account).where(Account.email == email)
    ).scalar_one_or_none()


def create_account(
    passwords: PasswordService,
    email: str,
    password: str | None,
    name: str = "",
    email_verified=False,
) -> Account:
    """Create and commit an account. Raises AccountExists or InvalidEmail."""
    email = normalize_email(email)
    if find_account(email) is not None:
        raise AccountExists(email)
    account = Account(
        email=email,
        name=name,
        password_hash=passwords.hash(password) if password else None,
        email_verified=email_verified,
    )
    db.session.add(account)
    db.session.commit()
    return account


def check_password(
    passwords: PasswordService, email: str, password: str
) -> Account | None:
    """The active account for this email and password, else None.

    An unknown email costs the same argon2 work as a wrong password, and
    both get the same None. A hash made with old parameters is replaced
    (the caller commits).
    """
    account = find_account(email)
    password_hash = account.password_hash if account else None
    if not passwords.verify(password_hash, password or ""):
        return None
    if account.status != AccountStatus.ACTIVE:
        return None
    if passwords.needs_rehash(account.password_hash):
        account.password_hash = passwords.hash(password)
    return account
