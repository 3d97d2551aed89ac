"""Refresh-token rotation with reuse detection (RFC 9700 §4.14.2).

The live token of a grant is the one whose ``seq`` equals ``grant.live_seq``.
Rotation is a conditional UPDATE on that column, so across processes only
one request can rotate a given token; the database, not a Python lock, keeps
"at most one live refresh token per grant" true.
"""

from datetime import timedelta

from sqlalchemy import select, update

from app.events.services import EventTag, record_event
from app.extensions import db
from app.models import Account, Client, Device, Grant, RefreshToken
from app.models.base import utcnow
from app.oauth.tokens import Subject
from app.revocation.services import grant_is_live, revoke_grant
from app.security.tokens import hash_token, new_token


class RefreshRejected(Exception):
    """The refresh token is unknown, foreign, expired, dead or reused."""


class RefreshRotation:
    def __init__(self, grace_seconds: int, idle_lifetime: int, absolute_lifetime: int):
        self.grace = timedelta(seconds=grace_seconds)
        self.idle = timedelta(seconds=idle_lifetime)
        self.absolute = timedelta(seconds=absolute_lifetime)

    def rotate(self, value: str, client: Client, ip="", ua="") -> Subject:
        """Exchange ``value`` for a successor; returns the Subject to issue for.

        Raises RefreshRejected. On reuse the grant is revoked and committed
        before raising. On success the caller commits.
        """
        if not value or len(value) > 200:
            raise RefreshRejected("malformed")
        row = db.session.execute(
            select(RefreshToken, Grant, Account, Device)
            .join(Grant, Grant.id == RefreshToken.grant_id)
            .join(Account, Account.id == Grant.account_id)
            .join(Device, Device.id == Grant.device_id)
            .where(RefreshToken.token_hash == hash_token(value))
        ).first()
        if row is None:
            raise RefreshRejected("unknown")
        token, grant, account, device = row
        if grant.client_id != client.client_id:
            raise RefreshRejected("issued to another client")
        now = utcnow()
        if not grant_is_live(grant, account, device):
            raise RefreshRejected("grant revoked")
        if (
            now - grant.created_at > self.absolute
            or now - grant.last_refresh_at > self.idle
        ):
            raise RefreshRejected("expired")

        if token.seq == grant.live_seq:
            successor = self._advance(
                grant,
                expect_live=token.seq,
                parent=token.seq,
                now=now,
                reset_clock=True,
            )
            if successor:
                return self._subject(grant, account, successor)
            db.session.refresh(grant)
        if (
            self.grace.total_seconds() > 0
            and token.seq == grant.live_parent_seq
            and now - grant.last_refresh_at <= self.grace
        ):
            # The client lost the response to its last rotation and retries:
            # replace the successor it never saw (FAPI 2.0 §5.3.2.1).
            successor = self._advance(
                grant,
                expect_live=grant.live_seq,
                parent=token.seq,
                now=now,
                reset_clock=False,
            )
            if successor:
                return self._subject(grant, account, successor)
            raise RefreshRejected("concurrent rotation")
        # RFC 9700 §4.14.2: a used refresh token came back, so one of its two
        # holders is an attacker; end the whole family.
        if revoke_grant(grant.id, "refresh_token_reused"):
            record_event(
                EventTag.REFRESH_REUSED,
                account.id,
                ip=ip,
                user_agent=ua,
                device_id=grant.device_id,
                client_id=client.client_id,
                grant_id=grant.id,
            )
        db.session.commit()
        raise RefreshRejected("reused")

    def _advance(
        self, grant: Grant, expect_live: int, parent: int, now, reset_clock: bool
    ) -> str | None:
        new_seq = grant.seq_counter + 1
        values = {
            "live_seq": new_seq,
            "live_parent_seq": parent,
            "seq_counter": new_seq,
        }
        if reset_clock:
            values["last_refresh_at"] = now
        result = db.session.execute(
            update(Grant)
            .where(
                Grant.id == grant.id,
                Grant.live_seq == expect_live,
                Grant.seq_counter == grant.seq_counter,
                Grant.revoked_at.is_(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        value = new_token()
        db.session.add(
            RefreshToken(
                token_hash=hash_token(value),
                grant_id=grant.id,
                seq=new_seq,
                created_at=now,
            )
        )
        return value

    @staticmethod
    def _subject(grant: Grant, account: Account, refresh_value: str) -> Subject:
        return Subject(
            account=account,
            device_id=grant.device_id,
            session_sid=grant.session_sid,
            auth_time=grant.auth_time,
            amr=list(grant.amr or []),
            acr=grant.acr,
            grant=grant,
            refresh_token=refresh_value,
        )
