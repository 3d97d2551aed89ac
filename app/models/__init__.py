"""SQLAlchemy tables, one module per aggregate."""

from app.models.account import Account, AccountStatus
from app.models.account_token import AccountLink, LinkPurpose, RecoveryCode
from app.models.client import Client, ClientRegistry
from app.models.device import BrowserSession, Device, SessionEnd
from app.models.device_code import DeviceCode, DeviceCodeStatus
from app.models.event import SecurityEvent
from app.models.grant import AuthorizationCode, Consent, Grant, RefreshToken
from app.models.identity import FederatedIdentity
from app.models.key import SigningKey, SigningKeyState
from app.models.outbox import OutboxMessage
from app.models.revoked import RevokedAccessToken

__all__ = [
    "Account",
    "AccountLink",
    "AccountStatus",
    "AuthorizationCode",
    "BrowserSession",
    "Client",
    "ClientRegistry",
    "Consent",
    "Device",
    "DeviceCode",
    "DeviceCodeStatus",
    "FederatedIdentity",
    "Grant",
    "LinkPurpose",
    "OutboxMessage",
    "RecoveryCode",
    "RefreshToken",
    "RevokedAccessToken",
    "SecurityEvent",
    "SessionEnd",
    "SigningKey",
    "SigningKeyState",
]
