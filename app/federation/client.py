"""Authlib's Flask OAuth client, one registration per upstream provider."""

from authlib.integrations.flask_client import OAuth

from app.federation.providers import Provider

UPSTREAM_TIMEOUT = 5


class FederationClients:
    """Provider config plus the Authlib client that talks to it (discovery,
    PKCE, state, nonce, ID token validation against the upstream JWKS)."""

    def __init__(self, app, providers: dict[str, Provider]):
        self.providers = providers
        self.oauth = OAuth(app)
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
