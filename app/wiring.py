"""The services one process holds: built once in create_app, shared by views."""

from dataclasses import dataclass

from app.accounts.totp import TotpService
from app.config import Settings
from app.federation.providers import load_providers
from app.keys.ring import KeyRing
from app.mail.backends import MailBackend, backend_from_settings
from app.oauth.introspection import TokenInspector
from app.oauth.refresh import SUCCESSOR_KEY_PURPOSE, RefreshRotation
from app.oauth.server import LatchkeyAuthorizationServer
from app.oauth.tokens import TokenIssuer
from app.oauth.upstream import FederationClients
from app.security.crypto import KeyEncryption, derive_key
from app.security.passwords import PasswordService


@dataclass
class Services:
    settings: Settings
    passwords: PasswordService
    encryption: KeyEncryption
    keys: KeyRing
    issuer: TokenIssuer
    inspector: TokenInspector
    rotation: RefreshRotation
    server: LatchkeyAuthorizationServer
    federation: FederationClients
    totp: TotpService
    mailer: MailBackend
    discovery_json: str = "{}"

    @classmethod
    def build(cls, app, s: Settings) -> "Services":
        encryption = KeyEncryption(s.kek_bytes())
        keys = KeyRing(
            encryption,
            s.signing_key_overlap,
            s.signing_key_prepublish,
            s.signing_key_check,
        )
        issuer = TokenIssuer(
            keys,
            s.issuer,
            s.access_token_lifetime,
            s.id_token_lifetime,
            s.access_token_alg,
        )
        rotation = RefreshRotation(
            derive_key(s.kek_bytes(), SUCCESSOR_KEY_PURPOSE),
            s.refresh_grace_seconds,
            s.refresh_token_idle_lifetime,
            s.refresh_token_absolute_lifetime,
        )
        server = LatchkeyAuthorizationServer(
            app, issuer, rotation, s.authorization_code_lifetime
        )
        return cls(
            settings=s,
            passwords=PasswordService(
                s.password_time_cost, s.password_memory_kib, s.password_parallelism
            ),
            encryption=encryption,
            keys=keys,
            issuer=issuer,
            inspector=TokenInspector(keys, s.issuer),
            rotation=rotation,
            server=server,
            federation=FederationClients(app, load_providers(s)),
            totp=TotpService(encryption),
            mailer=backend_from_settings(s, app.instance_path),
        )
