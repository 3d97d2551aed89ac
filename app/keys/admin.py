"""Operator actions on the signing keys: the first keys (a deploy step),
rotation with pre-publication, and revocation of a compromised key.

Each action first bumps ``signing_key_state.version``: that write takes the
row lock on PostgreSQL and the database write lock on SQLite, so two
operators (or two deploy jobs) acting at once run one after the other and
every process sees the change at its next check.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select, update

from app.events.services import EventTag, record_event
from app.extensions import db
from app.keys.ring import PURPOSE, SUPPORTED_ALGS, KeyRing
from app.models import SigningKey, SigningKeyState
from app.models.base import utcnow
from app.security.crypto import KeyEncryption
from app.unit_of_work import commit_early


class RotationPending(Exception):
    """A pre-published key of this algorithm has not taken over yet."""


class UnknownKey(Exception):
    """No signing key has this kid."""


@dataclass
class Revocation:
    key: SigningKey
    successor: SigningKey | None  # the key that signs in its place, if it signed


def _lock_ring() -> None:
    db.session.execute(
        update(SigningKeyState)
        .where(SigningKeyState.id == 1)
        .values(version=SigningKeyState.version + 1)
    )


def _live_keys(alg: str, now: datetime) -> list[SigningKey]:
    return list(
        db.session.execute(
            select(SigningKey)
            .where(
                SigningKey.alg == alg,
                SigningKey.revoked_at.is_(None),
                (SigningKey.expires_at.is_(None)) | (SigningKey.expires_at > now),
            )
            .order_by(SigningKey.activates_at)
        ).scalars()
    )


def _signs_at(row: SigningKey, now: datetime) -> bool:
    return row.activates_at <= now and (row.retired_at is None or now < row.retired_at)


def _generate(alg: str):
    if alg == "ES256":
        return ECKey.generate_key("P-256", auto_kid=True)
    return RSAKey.generate_key(2048, auto_kid=True)


def _create(encryption: KeyEncryption, alg: str, activates_at: datetime, key=None):
    key = key or _generate(alg)
    row = SigningKey(
        kid=key.kid,
        alg=alg,
        public_jwk=key.as_dict(private=False),
        private_encrypted=encryption.encrypt(
            json.dumps(key.as_dict(private=True)).encode(), PURPOSE
        ),
        activates_at=activates_at,
    )
    db.session.add(row)
    record_event(
        EventTag.KEY_CREATED,
        by="operator",
        kid=row.kid,
        alg=alg,
        activates_at=activates_at.isoformat(),
    )
    return row


def create_first_keys(encryption: KeyEncryption) -> list[SigningKey]:
    """One key for each algorithm that has no current or pending key,
    signing at once (nothing signed before it, so nothing to pre-publish
    for). Run from several processes at once, it creates each key once."""
    _lock_ring()
    now = utcnow()
    created = [
        _create(encryption, alg, now)
        for alg in SUPPORTED_ALGS
        if not any(
            _signs_at(r, now) or r.activates_at > now for r in _live_keys(alg, now)
        )
    ]
    commit_early("signing keys: every process must see them")
    return created


def rotate_key(
    encryption: KeyEncryption, alg: str, prepublish: int, overlap: int
) -> SigningKey:
    """A new ``alg`` key published now that takes over signing in
    ``prepublish`` seconds; the key it replaces stays in the JWKS for
    ``overlap`` seconds after that. Raises RotationPending if a previous
    rotation has not taken over yet. Committed at once (commit_early):
    every process must see it."""
    # Made before the clock is read: an RSA key can take a second to make,
    # and pre-publication counts from when the key is published.
    key = _generate(alg)
    _lock_ring()
    now = utcnow()
    rows = _live_keys(alg, now)
    pending = [r for r in rows if r.activates_at > now]
    if pending:
        db.session.rollback()
        raise RotationPending(
            f"{alg} key {pending[0].kid} takes over at "
            f"{pending[0].activates_at.isoformat()}"
        )
    current = [r for r in rows if _signs_at(r, now)]
    activates = now + timedelta(seconds=prepublish) if current else now
    for row in current:
        row.retired_at = activates
        row.expires_at = activates + timedelta(seconds=overlap)
    new = _create(encryption, alg, activates, key)
    commit_early("signing keys: every process must see them")
    return new


def revoke_key(encryption: KeyEncryption, kid: str) -> Revocation:
    """Withdraw ``kid``: out of the JWKS and no longer verifying, in every
    process at its next check (introspection and UserInfo check on every
    call). If it signed, a pre-published successor takes over now, else a
    new key does (relying parties fetch the JWKS again on an unknown kid).
    Records an operator security event. Raises UnknownKey. Committed at
    once (commit_early): every process must see it."""
    _lock_ring()
    row = db.session.execute(
        select(SigningKey).where(SigningKey.kid == kid)
    ).scalar_one_or_none()
    if row is None:
        db.session.rollback()
        raise UnknownKey(kid)
    if row.revoked_at is not None:
        db.session.rollback()
        return Revocation(row, None)
    now = utcnow()
    others = [r for r in _live_keys(row.alg, now) if r.id != row.id]
    successor = None
    if row.activates_at > now:
        # A revoked pre-published key never takes over: its predecessor
        # keeps signing and stays published.
        for other in others:
            if other.retired_at == row.activates_at:
                other.retired_at = other.expires_at = None
    elif _signs_at(row, now):
        pending = [r for r in others if r.activates_at > now]
        successor = pending[0] if pending else _create(encryption, row.alg, now)
        successor.activates_at = now
    row.revoked_at = now
    record_event(
        EventTag.KEY_REVOKED,
        by="operator",
        kid=row.kid,
        alg=row.alg,
        successor=successor.kid if successor else None,
    )
    commit_early("signing keys: every process must see them")
    return Revocation(row, successor)


def ensure_keys(ring: KeyRing) -> list[SigningKey]:
    """The deploy step (`flask keys`): create a signing key for each algorithm
    that has none (current or pending), then reload ``ring``. Safe to run from
    several places at once. Committed at once (commit_early); returns the
    keys created."""
    created = create_first_keys(ring.encryption)
    ring.reload()
    return created


def rotate(ring: KeyRing, alg: str) -> SigningKey:
    """Pre-publish a new ``alg`` key that takes over signing after the ring's
    ``prepublish_seconds``, then reload ``ring``. Committed at once;
    raises RotationPending."""
    new = rotate_key(
        ring.encryption, alg, ring.prepublish_seconds, ring.overlap_seconds
    )
    ring.reload()
    return new


def revoke(ring: KeyRing, kid: str):
    """Withdraw ``kid`` at once (removed from the JWKS, its tokens refused),
    then reload ``ring``. Committed at once; raises UnknownKey."""
    result = revoke_key(ring.encryption, kid)
    ring.reload()
    return result
