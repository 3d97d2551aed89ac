"""Device authorization grant (RFC 8628): the endpoint a TV or CLI calls,
the polling grant at /token, and the approve/deny rules behind /link."""

from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    AuthorizationPendingError,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    ExpiredTokenError,
    SlowDownError,
)
from flask import url_for
from sqlalchemy import or_, select, update

from app.extensions import db, rowcount
from app.models import Account, AccountStatus, Client, Device, DeviceCode
from app.models.base import utcnow
from app.models.device_code import DeviceCodeStatus
from app.oauth.tokens import Subject
from app.security.tokens import hash_token, new_token

DEVICE_CODE_LIFETIME = 600
POLL_INTERVAL = 5
# RFC 8628 §6.1: consonants only, no vowels (no words), no lookalikes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def normalize_user_code(raw: str) -> str:
    """What a person typed, reduced to the code's letters (RFC 8628 §6.1:
    ignore case and punctuation)."""
    return "".join(c for c in (raw or "").upper() if c in USER_CODE_ALPHABET)[:16]


class LatchkeyDeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):
    ENDPOINT_NAME = "device_authorization"
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    EXPIRES_IN = DEVICE_CODE_LIFETIME
    INTERVAL = POLL_INTERVAL

    def __init__(self, server, issuer: str):
        super().__init__(server)
        self.issuer = issuer

    def create_endpoint_response(self, request):
        self._device_name = request.payload.data.get("device_name")
        return super().create_endpoint_response(request)

    def authenticate_client(self, request):
        client = super().authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("The client may not use the device flow.")
        return client

    def generate_device_code(self):
        return new_token()

    def get_verification_uri(self):
        # RFC 8628 §3.2: the page where the person enters the user code, from
        # the URL map as every advertised URL is (app/oauth/discovery.py).
        return self.issuer + url_for("devices.link")

    def save_device_credential(self, client_id, scope, data):
        client = db.session.get(Client, client_id)
        scope = client.get_allowed_scope(scope)
        if scope is None:
            raise InvalidRequestError("invalid scope")
        data["scope"] = scope
        # Not in RFC 8628; lets a TV say what it is on the /link page and in
        # the person's device list.
        name = (getattr(self, "_device_name", None) or client.name)[:200]
        now = utcnow()
        db.session.add(
            DeviceCode(
                device_code_hash=hash_token(data["device_code"]),
                user_code_hash=hash_token(normalize_user_code(data["user_code"])),
                client_id=client_id,
                scope=scope,
                device_name=name,
                status=DeviceCodeStatus.PENDING,
                interval=self.INTERVAL,
                created_at=now,
                expires_at=now + timedelta(seconds=self.EXPIRES_IN),
            )
        )
        db.session.commit()
        data.pop("scope")


class PollingDeviceCodeGrant(DeviceCodeGrant):
    """Polling at /token with grant_type=device_code (RFC 8628 §3.4-3.5)."""

    def validate_token_request(self):
        device_code = self.request.payload.data.get("device_code")
        if not device_code:
            raise InvalidRequestError("Missing 'device_code' in payload")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError()
        row = None
        if len(device_code) <= 200:
            row = db.session.get(DeviceCode, hash_token(device_code))
        if row is None or row.client_id != client.client_id:
            raise InvalidGrantError("Invalid 'device_code'.")
        self.request.client = client
        self.request.user = self._poll(row)
        self.request.credential = row

    def _poll(self, row: DeviceCode) -> Subject:
        now = utcnow()
        if row.status == DeviceCodeStatus.USED:
            raise InvalidGrantError("The device code was already used.")
        if row.expires_at <= now:
            raise ExpiredTokenError()
        if row.status == DeviceCodeStatus.DENIED:
            raise AccessDeniedError()
        if row.status == DeviceCodeStatus.PENDING:
            self._check_pace(row, now)
            raise AuthorizationPendingError()
        claimed = rowcount(
            db.session.execute(
                update(DeviceCode)
                .where(
                    DeviceCode.device_code_hash == row.device_code_hash,
                    DeviceCode.status == DeviceCodeStatus.APPROVED,
                )
                .values(status=DeviceCodeStatus.USED)
            )
        )
        db.session.commit()
        if claimed != 1:
            raise InvalidGrantError("The device code was already used.")
        account = db.session.get(Account, row.account_id)
        device = db.session.get(Device, row.device_id)
        if (
            account is None
            or account.status != AccountStatus.ACTIVE
            or account.generation != row.account_generation
            or device is None
            or device.revoked_at is not None
            or row.auth_time is None  # always set by the approval
        ):
            # Signed out everywhere between approval and this poll.
            raise AccessDeniedError()
        return Subject(
            account=account,
            device_id=device.id,
            session_sid=None,
            auth_time=row.auth_time,
            amr=list(row.amr or []),
            acr=row.acr,
        )

    @staticmethod
    def _check_pace(row: DeviceCode, now) -> None:
        # RFC 8628 §3.5: polling faster than the interval earns slow_down and
        # a 5 s longer interval. A conditional UPDATE keeps this true when
        # polls race across processes.
        window = now - timedelta(seconds=row.interval)
        paced = rowcount(
            db.session.execute(
                update(DeviceCode)
                .where(
                    DeviceCode.device_code_hash == row.device_code_hash,
                    or_(
                        DeviceCode.last_polled_at.is_(None),
                        DeviceCode.last_polled_at <= window,
                    ),
                )
                .values(last_polled_at=now)
            )
        )
        if paced != 1:
            db.session.execute(
                update(DeviceCode)
                .where(DeviceCode.device_code_hash == row.device_code_hash)
                .values(interval=DeviceCode.interval + 5, last_polled_at=now)
            )
        db.session.commit()
        if paced != 1:
            raise SlowDownError()

    def create_token_response(self):
        client = self.request.client
        token = self.generate_token(
            user=self.request.user,
            scope=self.request.credential.scope,
            include_refresh_token=client.check_grant_type("refresh_token"),
        )
        if "openid" in token["scope"].split():
            # OIDC Core §3.1.3.3: with openid the token response carries an
            # ID token, whichever grant obtained it.
            token["id_token"] = self.server.issuer_service.id_token(
                client, self.request.user, token["scope"], token["access_token"]
            )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class UnknownUserCode(Exception):
    """No pending, unexpired device code matches what was typed."""


def find_pending(user_code: str) -> tuple[DeviceCode, Client]:
    """The pending request behind a typed user code. Raises UnknownUserCode."""
    code = normalize_user_code(user_code)
    if len(code) != 8:
        raise UnknownUserCode
    row = db.session.execute(
        select(DeviceCode, Client)
        .join(Client, Client.client_id == DeviceCode.client_id)
        .where(DeviceCode.user_code_hash == hash_token(code))
    ).first()
    if row is None:
        raise UnknownUserCode
    device_code, client = row
    if (
        device_code.status != DeviceCodeStatus.PENDING
        or device_code.expires_at <= utcnow()
    ):
        raise UnknownUserCode
    return device_code, client


def decide(
    user_code: str,
    account: Account,
    approve: bool,
    session_auth_time,
    amr,
    acr,
    ip: str,
) -> Device | None:
    """Approve (making the device) or deny a pending request; no commit.

    Returns the new device on approval. Raises UnknownUserCode if the code is
    no longer pending (used, expired, or decided in another tab).
    """
    device_code, _client = find_pending(user_code)
    now = utcnow()
    device = None
    values: dict[str, Any] = {
        "status": DeviceCodeStatus.DENIED,
        "account_id": account.id,
    }
    if approve:
        device = Device(
            account_id=account.id,
            kind="device",
            name=device_code.device_name,
            first_seen_at=now,
            last_seen_at=now,
            last_ip=ip,
        )
        db.session.add(device)
        db.session.flush()
        values = {
            "status": DeviceCodeStatus.APPROVED,
            "account_id": account.id,
            "account_generation": account.generation,
            "device_id": device.id,
            "auth_time": session_auth_time,
            "amr": amr,
            "acr": acr,
        }
    decided = rowcount(
        db.session.execute(
            update(DeviceCode)
            .where(
                DeviceCode.device_code_hash == device_code.device_code_hash,
                DeviceCode.status == DeviceCodeStatus.PENDING,
            )
            .values(**values)
        )
    )
    if decided != 1:
        db.session.rollback()
        raise UnknownUserCode
    return device
