"""Device authorization grant (RFC 8628): the endpoint a TV or CLI calls,
the polling grant at /token, and the approve/deny rules behind /link."""

from datetime import timedelta

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
from sqlalchemy import or_, update

from app.cutoff.liveness import is_live, with_context
from app.devices.linking import normalize_user_code
from app.extensions import db
from app.models import Account, Client, Device, DeviceCode
from app.models.base import claim_once, utcnow
from app.models.device_code import DeviceCodeStatus
from app.oauth.tokens import Subject
from app.security.opaque_tokens import hash_token, new_token
from app.unit_of_work import commit_early

DEVICE_CODE_LIFETIME = 600
POLL_INTERVAL = 5


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
        found = None
        if len(device_code) <= 200:
            # With the account and device its liveness check needs, in the
            # one statement that finds it (both None while pending).
            found = db.session.execute(
                with_context(DeviceCode).where(
                    DeviceCode.device_code_hash == hash_token(device_code)
                )
            ).first()
        if found is None or found[0].client_id != client.client_id:
            raise InvalidGrantError("Invalid 'device_code'.")
        row, account, device = found
        self.request.client = client
        self.request.user = self._poll(row, account, device)
        self.request.credential = row

    def _poll(
        self, row: DeviceCode, account: Account | None, device: Device | None
    ) -> Subject:
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
        # Judged on the rows as loaded, before the claim marks the code used.
        live = is_live(row, account, device, now=now)
        claimed = claim_once(
            update(DeviceCode)
            .where(
                DeviceCode.device_code_hash == row.device_code_hash,
                DeviceCode.status == DeviceCodeStatus.APPROVED,
            )
            .values(status=DeviceCodeStatus.USED)
        )
        commit_early("device code claimed: nothing after gives it back")
        if not claimed:
            raise InvalidGrantError("The device code was already used.")
        if not live or account is None or device is None:
            # Signed out everywhere (or the device) between approval and
            # this poll; is_live is False for a missing account or device.
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
        paced = claim_once(
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
        if not paced:
            db.session.execute(
                update(DeviceCode)
                .where(DeviceCode.device_code_hash == row.device_code_hash)
                .values(interval=DeviceCode.interval + 5, last_polled_at=now)
            )
        if not paced:
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
