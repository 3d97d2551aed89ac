"""Authlib's Flask OAuth client, one registration per upstream provider."""

from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App, OAuth

from app.federation.errors import UpstreamError, UpstreamStateMismatch
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
        return provider, UpstreamClient(self.oauth.create_client(slug))


class UpstreamClient:
    """One provider's Authlib client, with Authlib's errors translated into
    app/federation/errors.py's, so that callers never import Authlib.

    Network failures (requests' exceptions) and malformed answers (ValueError,
    KeyError) pass through unchanged: callers tell "unavailable" from
    "refused" by them."""

    def __init__(self, client: FlaskOAuth2App):
        self._client = client

    @property
    def server_metadata(self) -> dict:
        """The cached discovery document (clear() it to fetch it again)."""
        return self._client.server_metadata

    def load_server_metadata(self) -> dict:
        """The provider's discovery document, fetched once per process."""
        return _translated(self._client.load_server_metadata)

    def authorize_redirect(self, redirect_uri: str, **params):
        """The redirect to the provider's authorization endpoint (with PKCE,
        state and nonce kept in the Flask session)."""
        return _translated(self._client.authorize_redirect, redirect_uri, **params)

    def authorize_access_token(self) -> dict:
        """The token response for this callback, its ID token verified (OIDC
        Core §3.1.3.7); raises UpstreamStateMismatch or UpstreamError."""
        return _translated(self._client.authorize_access_token)

    def fetch_jwk_set(self, force: bool = False) -> dict:
        """The provider's JWKS (cached; ``force`` fetches it again)."""
        return _translated(self._client.fetch_jwk_set, force=force)


def _translated(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except MismatchingStateError as exc:
        raise UpstreamStateMismatch(str(exc)) from exc
    except OAuthError as exc:
        raise UpstreamError(str(exc)) from exc
