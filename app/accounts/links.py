"""Single-use links sent by email: verify an address, reset a password,
confirm a new address. Only the SHA-256 of a link's token is stored."""

from datetime import timedelta

from sqlalchemy import update

from app.extensions import db, rowcount
from app.models import Account, AccountLink, AccountStatus
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token


def issue_link(
    account: Account, purpose: str, lifetime_seconds: int, new_email: str | None = None
) -> str:
    """A new link token for ``purpose``; earlier ones of that purpose die.
    No commit."""
    now = utcnow()
    db.session.execute(
        update(AccountLink)
        .where(
            AccountLink.account_id == account.id,
            AccountLink.purpose == purpose,
            AccountLink.used_at.is_(None),
        )
        .values(used_at=now)
    )
    token = new_token()
    db.session.add(
        AccountLink(
            token_hash=hash_token(token),
            account_id=account.id,
            purpose=purpose,
            new_email=new_email,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_seconds),
        )
    )
    return token


def find_link(token: str, purpose: str) -> tuple[AccountLink, Account] | None:
    """The live link for ``token`` and its account, or None.

    A link is dead once used, expired, replaced by a newer one, or — for
    password resets — once the password changed after it was sent.
    """
    if not token or len(token) > 100:
        return None
    link = db.session.get(AccountLink, hash_token(token))
    if link is None or link.purpose != purpose or link.used_at is not None:
        return None
    if link.expires_at <= utcnow():
        return None
    account = db.session.get(Account, link.account_id)
    if account is None or account.status != AccountStatus.ACTIVE:
        return None
    changed = account.password_changed_at
    if changed is not None and link.created_at <= changed:
        return None
    return link, account


def claim_link(link: AccountLink) -> bool:
    """Use the link up; False if another request used it first. No commit."""
    return (
        rowcount(
            db.session.execute(
                update(AccountLink)
                .where(
                    AccountLink.token_hash == link.token_hash,
                    AccountLink.used_at.is_(None),
                )
                .values(used_at=utcnow())
            )
        )
        == 1
    )
