"""What can go wrong talking to an upstream provider, in our own words.

The Authlib client (app/oauth/upstream.py) translates its errors into these,
so that the pages and services of federation never import Authlib."""


class UpstreamError(Exception):
    """The upstream OAuth exchange failed: an error answer, a refused token
    response or an ID token that does not verify (Authlib's OAuthError)."""


class UpstreamStateMismatch(UpstreamError):
    """The callback's ``state`` is not the one this browser was sent off with
    (RFC 6749 §10.12): an expired, replayed or forged sign-in link."""
