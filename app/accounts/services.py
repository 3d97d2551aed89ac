"""Accounts: creation and password sign-in."""

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from app.accounts.credentials import new_password_hash
from app.extensions import db
from app.models import Account, AccountStatus
from app.security.passwords import PasswordService


class AccountExists(Exception):
    """An account with that email already exists."""


class InvalidEmail(ValueError):
    """Not an email address."""


def normalize_email(email: str) -> str:
    """The one canonical form of an address typed, claimed or configured.

    Returns exactly one address, validated by email-validator (syntax only:
    no DNS lookups), in ASCII (an internationalised domain as its IDNA
    A-label, RFC 5891) and lower-cased, as accounts store and compare it.
    Raises InvalidEmail for anything else: an address list
    (``a@example.com,b@example.com``), a display name (``Ada <a@…>``), a
    quoted local part, a domain literal, a domain without a dot, control
    characters, or a local part that would need SMTPUTF8 (RFC 6531), which
    not every mail server accepts.
    """
    try:
        checked = validate_email(
            (email or "").strip(),
            check_deliverability=False,
            allow_smtputf8=False,
        )
    except (EmailNotValidError, TypeError) as exc:
        raise InvalidEmail(str(email)[:320]) from exc
    if checked.ascii_email is None:  # only with SMTPUTF8, which is refused
        raise InvalidEmail(str(email)[:320])
    return checked.ascii_email.lower()


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
    """Add an account, flushed so that its id and creation time are set;
    with no ``password`` it signs in only through a provider. Raises
    AccountExists, InvalidEmail or WeakPassword (the password policy, as on
    every form that sets one)."""
    email = normalize_email(email)
    if find_account(email) is not None:
        raise AccountExists(email)
    account = Account(
        email=email,
        name=name,
        password_hash=(
            new_password_hash(passwords, email, name, password) if password else None
        ),
        email_verified=email_verified,
    )
    db.session.add(account)
    db.session.flush()
    return account


def check_password(
    passwords: PasswordService, email: str, password: str
) -> Account | None:
    """The active account for this email and password, else None.

    An unknown email costs the same argon2 work as a wrong password, and
    both get the same None. A hash made with old parameters is replaced
    (written with the request).
    """
    account = find_account(email)
    password_hash = account.password_hash if account else None
    if not passwords.verify(password_hash, password or ""):
        return None
    if account is None or password_hash is None:  # verify said False for both
        return None
    if account.status != AccountStatus.ACTIVE:
        return None
    if passwords.needs_rehash(password_hash):
        account.password_hash = passwords.hash(password)
    return account
