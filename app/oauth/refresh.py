"""Refresh-token rotation with reuse detection (RFC 9700 §4.14.2) and
idempotent retries.

The live token of a grant is the one whose ``seq`` equals ``grant.live_seq``.
Rotation is a conditional UPDATE on that column, so across processes only
one request can rotate a given token; the database, not a Python lock, keeps
"at most one live refresh token per grant" true.

A successor is not random: it is HMAC-SHA256 of the presented token under a
key derived from the KEK (never stored). So a retry of the token just
rotated, within the client's grace window, is answered with the very same
successor, computed again rather than stored: two tabs refreshing at once,
or a retry racing its lost original, both hold the one live token, and the
database still holds hashes only.
"""

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import TypeVar, cast

from sqlalchemy import Select, Table, bindparam, insert, update

from app.cutoff.liveness import is_live, with_context
from app.cutoff.services import revoke_grant, sid_for_tokens
from app.events.services import NOBODY, EventTag, Who, record_event
from app.extensions import db
from app.models import Account, BrowserSession, Client, Device, Grant, RefreshToken
from app.models.base import claim_once, utcnow
from app.oauth.tokens import Subject
from app.security.opaque_tokens import hash_token

T = TypeVar("T")

# HKDF info label of the successor key (app.security.crypto.derive_key).
SUCCESSOR_KEY_PURPOSE = "latchkey/refresh-token-successor/v1"


@cache
def refresh_token_statement() -> Select:
    """The grant, its context (is_live's rows) and the refresh token whose
    SHA-256 is the ``token_hash`` parameter: one statement, built once."""
    return (
        with_context(Grant, RefreshToken)
        .join(RefreshToken, RefreshToken.grant_id == Grant.id)
        .where(RefreshToken.token_hash == bindparam("token_hash"))
    )


# The declarative table is a Table; its attribute is typed as FromClause.
_INSERT_REFRESH_TOKEN = insert(cast(Table, RefreshToken.__table__))
# The rotation's claim, on the table rather than the entity: an ORM-enabled
# UPDATE goes through the ORM's bulk-update preparation on every call
# (about 150 µs of a refresh's CPU on PostgreSQL), and the session's Grant
# is not synchronised either way (it was synchronize_session=False).
_grants = cast(Table, Grant.__table__).c
_ADVANCE_GRANT = (
    update(cast(Table, Grant.__table__))
    .where(
        _grants.id == bindparam("grant_id"),
        _grants.live_seq == bindparam("expect_live"),
        _grants.seq_counter == bindparam("expect_counter"),
        _grants.revoked_at.is_(None),
    )
    .values(
        live_seq=bindparam("new_seq"),
        live_parent_seq=bindparam("expect_live"),
        seq_counter=bindparam("new_seq"),
        last_refresh_at=bindparam("now"),
    )
)


class RefreshRejected(Exception):
    """The refresh token is unknown, foreign, expired, dead or reused."""


class RefreshRotation:
    """Rotates refresh tokens. ``successor_key`` is the HMAC key (derived
    from the KEK); ``default_grace`` applies to clients that set none."""

    def __init__(
        self,
        successor_key: bytes,
        default_grace: int,
        idle_lifetime: int,
        absolute_lifetime: int,
    ):
        self._key = successor_key
        self.default_grace = default_grace
        self.idle = timedelta(seconds=idle_lifetime)
        self.absolute = timedelta(seconds=absolute_lifetime)

    def successor(self, value: str) -> str:
        """The one successor of refresh token ``value``: 256 bits of
        HMAC-SHA256, URL-safe base64 like every other token (43 chars)."""
        mac = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def grace_for(self, client: Client) -> timedelta:
        seconds = client.refresh_grace_seconds
        return timedelta(seconds=self.default_grace if seconds is None else seconds)

    def rotate(
        self,
        value: str,
        client: Client,
        issue: Callable[[Subject], T],
        who: Who = NOBODY,
    ) -> T:
        """Exchange ``value`` for its successor: ``issue(subject)`` makes
        the answer (the token response) for the Subject to issue for, and
        is returned.

        ``issue`` runs before the conditional UPDATE that makes the
        successor live, so the write lock (SQLite) or the grant's row lock
        (PostgreSQL) is held from that UPDATE to the commit only, not
        across signing the new tokens. An exception out of ``issue`` (a
        scope the grant lacks) leaves nothing written. Of concurrent
        rotations of one token, the loser's answer is its retry (the same
        successor, if within the grace window) or a reuse.

        Raises RefreshRejected (the caller answers invalid_grant, RFC 6749
        §5.2, saying nothing of why). On reuse the grant is revoked before raising; the
        invalid_grant answer is a response, so the request's commit keeps
        the revocation.
        """
        if not value or len(value) > 200:
            raise RefreshRejected("malformed")
        row = db.session.execute(
            refresh_token_statement(), {"token_hash": hash_token(value)}
        ).first()
        if row is None:
            raise RefreshRejected("unknown")
        grant, account, device, session, token = row
        if grant.client_id != client.client_id:
            raise RefreshRejected("issued to another client")
        now = utcnow()
        if not is_live(grant, account, device, session, now):
            # Revoked, cut off, or its session ended: nothing to detect.
            raise RefreshRejected("grant not live")
        if now > grant.refresh_expires_at(self.idle, self.absolute):
            raise RefreshRejected("expired")
        successor = self.successor(value)
        if token.seq == grant.live_seq:
            answer = issue(self._subject(grant, account, device, session, successor))
            if self._advance(grant, token.seq, successor, now):
                return answer
            # Another request rotated it first; see what it left.
            db.session.refresh(grant)
            if self._is_retry(grant, token, client, now):
                # Its successor is the one this answer carries.
                return answer
        elif self._is_retry(grant, token, client, now):
            # The successor of this token is the live one: hand it out again
            # (with a fresh access token), replacing nothing.
            return issue(self._subject(grant, account, device, session, successor))
        self._reused(grant, account, client, who)
        raise RefreshRejected("reused")

    def _is_retry(
        self, grant: Grant, token: RefreshToken, client: Client, now: datetime
    ) -> bool:
        # Only the token just rotated, only while its successor is the live
        # token, only within the client's window; anything else is reuse.
        grace = self.grace_for(client)
        return (
            grace.total_seconds() > 0
            and grant.revoked_at is None
            and token.seq == grant.live_parent_seq
            and now - grant.last_refresh_at <= grace
        )

    def _reused(self, grant: Grant, account: Account, client: Client, who: Who):
        # RFC 9700 §4.14.2: a used refresh token came back, so one of its two
        # holders is an attacker; end the whole family.
        if revoke_grant(grant.id, "refresh_token_reused"):
            record_event(
                EventTag.REFRESH_REUSED,
                account.id,
                who,
                device_id=grant.device_id,
                client_id=client.client_id,
                grant_id=grant.id,
            )

    @staticmethod
    def _advance(grant: Grant, expect_live: int, successor: str, now) -> bool:
        """Make ``successor`` the live token if ``expect_live`` still is;
        of concurrent callers exactly one gets True."""
        new_seq = grant.seq_counter + 1
        advanced = claim_once(
            _ADVANCE_GRANT,
            {
                "grant_id": grant.id,
                "expect_live": expect_live,
                "expect_counter": grant.seq_counter,
                "new_seq": new_seq,
                "now": now,
            },
        )
        if not advanced:
            return False
        # A Core INSERT, not a pending ORM object: the session's flush at
        # commit cost about a tenth of a refresh's CPU (bench/inproc.py),
        # and nothing in the request reads the new row back.
        db.session.execute(
            _INSERT_REFRESH_TOKEN,
            {
                "token_hash": hash_token(successor),
                "grant_id": grant.id,
                "seq": new_seq,
                "created_at": now,
            },
        )
        return True

    @staticmethod
    def _subject(
        grant: Grant,
        account: Account,
        device: Device,
        session: BrowserSession | None,
        refresh_value: str,
    ) -> Subject:
        return Subject(
            account=account,
            device_id=grant.device_id,
            # A refreshed token never names a session that has ended.
            session_sid=sid_for_tokens(grant, session, account, device),
            auth_time=grant.auth_time,
            amr=list(grant.amr or []),
            acr=grant.acr,
            grant=grant,
            refresh_token=refresh_value,
        )
