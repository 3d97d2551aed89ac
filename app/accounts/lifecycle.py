"""An account's life after sign-up: deactivation (reversible, data kept),
reactivation, and deletion (an operator's explicit act that removes the
personal data and leaves a tombstone).

Deactivated is not deleted (DESIGN.md): the rows stay, nothing
authenticates. Every check of sessions, grants, codes, passwords and
upstream sign-ins compares the status with ACTIVE, so setting it is enough
to refuse new sign-ins; the generation bump cuts off what was already
issued. Reactivation restores the status only: the generation stays bumped,
so the tokens cut off at deactivation stay dead.

Each function is one step of its request's or command's unit of work.
"""

from sqlalchemy import delete, select, update

from app.cutoff.services import cut_off_account
from app.events.services import NOBODY, EventTag, Who, record_event
from app.extensions import db
from app.logout.backchannel import FANOUT, fan_out
from app.mail.notices import notify_deactivated, notify_reactivated
from app.models import (
    Account,
    AccountLink,
    AccountStatus,
    AuthorizationCode,
    BrowserSession,
    Consent,
    Device,
    DeviceCode,
    FederatedIdentity,
    Grant,
    RecoveryCode,
    RefreshToken,
    SecurityEvent,
)
from app.models.base import claim_once, utcnow
from app.outbox.services import Delivery

# Reserved by RFC 2606 §2: mail to it can never be delivered, and
# normalize_email refuses it (no dot), so no one can sign in or sign up as it.
TOMBSTONE_DOMAIN = "invalid"


class AccountNotActive(Exception):
    """Only an active account can be deactivated."""


class AccountNotDeactivated(Exception):
    """Only a deactivated account can be reactivated."""


class AccountDeleted(Exception):
    """The account was deleted; nothing more can happen to it."""


def _set_status(account: Account, expected: AccountStatus, **values) -> bool:
    # Conditional on the status read, so two operators (or the person and an
    # operator) racing each other change it once.
    return claim_once(
        update(Account)
        .where(Account.id == account.id, Account.status == expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def deactivate_account(account: Account, by: str, who: Who = NOBODY):
    """Deactivate ``account`` and cut off every session, grant and token it
    holds, in one transaction; ``by`` is "self" or "operator".

    Raises AccountDeleted or AccountNotActive.
    """
    if account.status == AccountStatus.DELETED:
        raise AccountDeleted
    if not _set_status(
        account,
        AccountStatus.ACTIVE,
        status=AccountStatus.DEACTIVATED,
        deactivated_at=utcnow(),
    ):
        db.session.rollback()
        raise AccountNotActive
    cut = cut_off_account(account.id)
    notify_deactivated(account, who, by, cut)
    db.session.refresh(account)


def reactivate_account(account: Account, by: str = "operator", who: Who = NOBODY):
    """Let a deactivated account sign in again. What was cut off at
    deactivation stays cut off: the person signs in afresh everywhere.

    Raises AccountDeleted or AccountNotDeactivated.
    """
    if account.status == AccountStatus.DELETED:
        raise AccountDeleted
    if not _set_status(
        account,
        AccountStatus.DEACTIVATED,
        status=AccountStatus.ACTIVE,
        deactivated_at=None,
    ):
        db.session.rollback()
        raise AccountNotDeactivated
    notify_reactivated(account, who, by)
    db.session.refresh(account)


def delete_account(account: Account) -> None:
    """Remove the personal data of ``account`` and everything that could
    authenticate as it; keep a tombstone row and the bare security events
    (tag and time) so the log still says what happened when.

    Works on active and deactivated accounts. Raises AccountDeleted.
    """
    if account.status == AccountStatus.DELETED:
        raise AccountDeleted
    account_id = account.id
    now = utcnow()
    cut_off_account(account_id)
    _notify_relying_parties(account_id, now)
    _remove_credentials_and_grants(account_id)
    # The tombstone of the log: what happened and when, not from where.
    db.session.execute(
        update(SecurityEvent)
        .where(SecurityEvent.account_id == account_id)
        .values(ip="", user_agent="", device_id=None, details={})
    )
    record_event(EventTag.DELETED, account_id)
    account.email = f"deleted-{account_id}@{TOMBSTONE_DOMAIN}"
    account.name = ""
    account.password_hash = None
    account.email_verified = False
    account.must_reset_password = False
    account.totp_secret_encrypted = None
    account.totp_enabled_at = None
    account.totp_last_step = None
    account.status = AccountStatus.DELETED
    account.deleted_at = now


def _notify_relying_parties(account_id: str, now) -> None:
    """Back-channel logout notices are normally worked out later, by the
    outbox worker, from the grant rows; deletion removes those rows, so work
    them out now, inside this transaction. One pass per generation the
    grants were made in covers grants cut off earlier (e.g. at deactivation)
    whose notices the worker has not expanded yet; the notices' dedupe keys
    keep a relying party from being told twice."""
    generations = (
        db.session.execute(
            select(Grant.account_generation)
            .where(Grant.account_id == account_id)
            .distinct()
        )
        .scalars()
        .all()
    )
    for generation in generations:
        payload = {
            "cause": "account",
            "account_id": account_id,
            "generation": generation,
            "at": "1970-01-01T00:00:00+00:00",
        }
        fan_out(Delivery(0, FANOUT, payload, 1, now))


def _remove_credentials_and_grants(account_id: str) -> None:
    """Children before parents, so foreign keys hold on SQLite and
    PostgreSQL alike without relying on ON DELETE CASCADE."""
    grants = select(Grant.id).where(Grant.account_id == account_id)
    devices = select(Device.id).where(Device.account_id == account_id)
    for statement in (
        delete(RefreshToken).where(RefreshToken.grant_id.in_(grants)),
        delete(AuthorizationCode).where(
            (AuthorizationCode.account_id == account_id)
            | AuthorizationCode.device_id.in_(devices)
        ),
        delete(DeviceCode).where(
            (DeviceCode.account_id == account_id) | DeviceCode.device_id.in_(devices)
        ),
        delete(Grant).where(Grant.account_id == account_id),
        delete(BrowserSession).where(BrowserSession.account_id == account_id),
        delete(Device).where(Device.account_id == account_id),
        delete(Consent).where(Consent.account_id == account_id),
        delete(AccountLink).where(AccountLink.account_id == account_id),
        delete(RecoveryCode).where(RecoveryCode.account_id == account_id),
        delete(FederatedIdentity).where(FederatedIdentity.account_id == account_id),
    ):
        db.session.execute(statement.execution_options(synchronize_session=False))
