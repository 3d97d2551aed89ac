"""Remembered consent: which scopes a person has already given a client."""

from sqlalchemy import select

from app.extensions import db
from app.models import Client, Consent
from app.models.base import utcnow


def consent_needed(account_id: str, client: Client, scope: str) -> bool:
    if client.first_party:
        return False
    row = db.session.execute(
        select(Consent).where(
            Consent.account_id == account_id, Consent.client_id == client.client_id
        )
    ).scalar_one_or_none()
    return row is None or not set(scope.split()) <= set(row.scopes)


def remember_consent(account_id: str, client_id: str, scope: str) -> None:
    """Add ``scope`` to what the person has agreed to."""
    row = db.session.execute(
        select(Consent).where(
            Consent.account_id == account_id, Consent.client_id == client_id
        )
    ).scalar_one_or_none()
    if row is None:
        row = Consent(account_id=account_id, client_id=client_id, scopes=[])
        db.session.add(row)
    row.scopes = sorted(set(row.scopes) | set(scope.split()))
    row.updated_at = utcnow()
