"""Fixtures of the black-box tests, for every folder (a pytest plugin that
tests/conftest.py loads): the live server's URL and issuer, its published
keys and discovery document, a person who can sign in, one client of each
common kind, and browsers (requests sessions that keep cookies).

The database, the app and the live servers are in tests/conftest.py;
Chromium is in tests/support/chromium.py."""

import pytest
import requests

from tests.flows.helpers import TIMEOUT, new_browser
from tests.support.oauth import jwks_client

DISCOVERY = "/.well-known/openid-configuration"


@pytest.fixture
def base_url(live_server):
    return live_server.url


@pytest.fixture(scope="session")
def issuer(base_env, live_server):
    """The live server's URL, which is the issuer of every token it makes."""
    assert live_server.url == base_env["LATCHKEY_ISSUER"]
    return base_env["LATCHKEY_ISSUER"]


@pytest.fixture(scope="session")
def jwks(live_server):
    """The published keys, from the jwks_uri discovery names."""
    return jwks_client(live_server.url)


@pytest.fixture
def metadata(base_url):
    """The discovery document (OIDC Discovery 1.0 §4), served as JSON."""
    response = requests.get(base_url + DISCOVERY, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


@pytest.fixture
def person(factories):
    return factories.account(name="Ada Lovelace")


@pytest.fixture
def rp(factories):
    """A confidential relying party (client_secret_basic, PKCE required)."""
    return factories.client()


@pytest.fixture
def rs(factories):
    """A resource server: may introspect any token (RFC 7662 §4)."""
    return factories.client(machine=True, may_introspect=True, name="Photo API")


@pytest.fixture
def tv(factories):
    """A public client of the device flow (RFC 8628) that may refresh."""
    return factories.client(device=True, name="Living Room Player")


@pytest.fixture
def browser():
    """A person's browser: a requests session that keeps cookies."""
    with new_browser() as session:
        yield session


@pytest.fixture
def second_browser():
    """The same person's other browser (another device)."""
    with new_browser() as session:
        yield session
