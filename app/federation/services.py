"""Federated sign-in rules: who a verified upstream identity is here."""

from dataclasses import dataclass

from sqlalchemy import func, select

from app.accounts.services import InvalidEmail, find_account, normalize_email
from app.extensions import db
from app.federation.providers import Provider
from app.models import Account, AccountStatus, FederatedIdentity
from app.models.base import utcnow


class AccountDeactivated(Exception):
    """The identity belongs to a deactivated account."""

    def __init__(self, account_id: str):
        super().__init__(account_id)
        self.account_id = account_id


class EmailNotVouched(Exception):
    """Unknown identity, and the provider does not vouch for an email."""


class IdentityTaken(Exception):
    """That upstream identity is already linked to another account."""


class LastSignInMethod(Exception):
    """Unlinking would leave the account with no way to sign in."""


@dataclass
class UpstreamIdentity:
    provider: str
    subject: str
    email: str | None  # only when the provider vouches for it


@dataclass
class SignIn:
    account: Account
    created: bool = False


@dataclass
class NeedsLink:
    """An account with the vouched email exists: prove it before linking."""

    account: Account
    identity: UpstreamIdentity


def upstream_identity(provider: Provider, claims: dict) -> UpstreamIdentity:
    email = None
    if provider.trust_email_verified and claims.get("email_verified") is True:
        try:
            email = normalize_email(str(claims.get("email", "")))
        except InvalidEmail:
            email = None
    return UpstreamIdentity(provider.slug, str(claims["sub"]), email)


def _find_identity(provider: str, subject: str) -> FederatedIdentity | None:
    return db.session.execute(
        select(FederatedIdentity).where(
            FederatedIdentity.provider == provider, FederatedIdentity.subject == subject
        )
    ).scalar_one_or_none()


def resolve_sign_in(identity: UpstreamIdentity, name: str = "") -> SignIn | NeedsLink:
    """Decide what a verified upstream sign-in means; a new account is added.

    Raises AccountDeactivated or EmailNotVouched.
    """
    linked = _find_identity(identity.provider, identity.subject)
    if linked is not None:
        account = db.session.get_one(Account, linked.account_id)
        if account.status != AccountStatus.ACTIVE:
            raise AccountDeactivated(account.id)
        linked.last_used_at = utcnow()
        return SignIn(account)
    if identity.email is None:
        raise EmailNotVouched
    existing = find_account(identity.email)
    if existing is not None:
        # Never link on email alone: the person proves the account first.
        return NeedsLink(existing, identity)
    account = Account(
        email=identity.email, name=name[:200], password_hash=None, email_verified=True
    )
    db.session.add(account)
    db.session.flush()
    db.session.add(
        FederatedIdentity(
            account_id=account.id,
            provider=identity.provider,
            subject=identity.subject,
            email=identity.email,
            last_used_at=utcnow(),
        )
    )
    return SignIn(account, created=True)


def link_identity(account: Account, identity: UpstreamIdentity) -> None:
    """Link an upstream identity to ``account``.

    Idempotent for the same account; raises IdentityTaken for another.
    """
    linked = _find_identity(identity.provider, identity.subject)
    if linked is not None:
        if linked.account_id != account.id:
            raise IdentityTaken
        return
    db.session.add(
        FederatedIdentity(
            account_id=account.id,
            provider=identity.provider,
            subject=identity.subject,
            email=identity.email or "",
            last_used_at=utcnow(),
        )
    )


def is_linked(account: Account, provider: str, subject: str | None = None) -> bool:
    """True if ``account`` has an identity at ``provider`` (with upstream
    ``subject``, when given)."""
    query = select(FederatedIdentity.id).where(
        FederatedIdentity.account_id == account.id,
        FederatedIdentity.provider == provider,
    )
    if subject is not None:
        query = query.where(FederatedIdentity.subject == subject)
    return db.session.execute(query.limit(1)).first() is not None


def identities_of(account: Account) -> list[FederatedIdentity]:
    return list(
        db.session.execute(
            select(FederatedIdentity)
            .where(FederatedIdentity.account_id == account.id)
            .order_by(FederatedIdentity.created_at)
        ).scalars()
    )


def unlink_identity(account: Account, provider: str) -> bool:
    """Remove the account's link to ``provider``.

    Raises LastSignInMethod when it is the only way left to sign in.
    """
    links = identities_of(account)
    target = [link for link in links if link.provider == provider]
    if not target:
        return False
    if account.password_hash is None and len(links) == len(target):
        raise LastSignInMethod
    for link in target:
        db.session.delete(link)
    return True


def count_identities(account_id: str) -> int:
    return db.session.execute(
        select(func.count(FederatedIdentity.id)).where(
            FederatedIdentity.account_id == account_id
        )
    ).scalar_one()
