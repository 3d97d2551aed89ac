"""The services one process holds: built once in create_app, shared by views."""

import json
from dataclasses import dataclass

from app.config import Settings
from app.federation.client import FederationClients
from app.federation.providers import load_providers
from app.mail.backends import MailBackend, backend_from_settings
from app.oauth.introspection import TokenInspector
from app.oauth.keys import KeyRing
from app.oauth.refresh import SUCCESSOR_KEY_PURPOSE, RefreshRotation
from app.oauth.server import SCOPES_SUPPORTED, LatchkeyAuthorizationServer
from app.oauth.tokens import TokenIssuer
from app.security.crypto import KeyEncryption, derive_key
from app.security.passwords import PasswordService
from app.security.totp import TotpService


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
        keys = KeyRing(encryption, s.signing_key_overlap)
        issuer = TokenIssuer(
            keys, s.issuer, s.access_token_lifetime, s.id_token_lifetime
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


def build_discovery(issuer: str) -> str:
    """OIDC Discovery 1.0 / RFC 8414 metadata, built once per process."""
    return json.dumps(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks.json",
            # RP-Initiated Logout 1.0 §2.1
            "end_session_endpoint": f"{issuer}/logout/end",
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "amr",
                "acr",
                "sid",
                "at_hash",
                "name",
                "email",
                "email_verified",
            ],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": True,
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            # Back-Channel Logout 1.0 §2.1; logout tokens carry sid when the
            # grant was made in a browser session.
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": False,
        }
    )
