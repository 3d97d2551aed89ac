"""Authlib's Flask OAuth client, one registration per upstream provider."""

from authlib.integrations.flask_client import FlaskOAuth2App, OAuth

from app.federation.providers import Provider
from app.federation.upstream_logout import upstream_algorithms
from app.security.jose import checked_header

UPSTREAM_TIMEOUT = 5


class CheckedHeaderApp(FlaskOAuth2App):
    """Authlib's client, with the upstream ID token's JOSE Header typed
    before Authlib picks a key by its kid (a list there would be a 500)."""

    def parse_id_token(self, token, nonce, *args, **kwargs):
        """Authlib's ID token validation (OIDC Core §3.1.3.7); raises
        UntrustedJWTRejected (a ValueError) for a malformed header first."""
        if "id_token" in token:
            metadata = self.load_server_metadata()
            checked_header(token["id_token"], upstream_algorithms(metadata))
        return super().parse_id_token(token, nonce, *args, **kwargs)


class CheckedOAuth(OAuth):
    oauth2_client_cls = CheckedHeaderApp


class FederationClients:
    """Provider config plus the Authlib client that talks to it (discovery,
    PKCE, state, nonce, ID token validation against the upstream JWKS)."""

    def __init__(self, app, providers: dict[str, Provider]):
        self.providers = providers
        self.oauth = CheckedOAuth(app)
        for provider in providers.values():
            self.oauth.register(
                name=provider.slug,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                server_metadata_url=provider.metadata_url,
                client_kwargs={
                    "scope": " ".join(provider.scopes),
                    "code_challenge_method": "S256",
                    "timeout": UPSTREAM_TIMEOUT,
                },
            )

    def get(self, slug: str):
        """(provider, client) or (None, None) for an unknown slug."""
        provider = self.providers.get(slug)
        if provider is None:
            return None, None
        return provider, self.oauth.create_client(slug)
