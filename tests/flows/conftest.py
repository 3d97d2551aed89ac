"""Fixtures shared by the black-box flow tests: the live server's URL (which
is the issuer), a person who can sign in, a confidential client and a
browser that keeps cookies."""

import pytest

from tests.flows.helpers import jwks_client, new_browser


@pytest.fixture
def base_url(live_server):
    return live_server.url


@pytest.fixture
def issuer(base_env, live_server):
    assert live_server.url == base_env["LATCHKEY_ISSUER"]
    return base_env["LATCHKEY_ISSUER"]


@pytest.fixture(scope="session")
def jwks(live_server):
    return jwks_client(live_server.url)


@pytest.fixture
def person(factories):
    return factories.account(name="Ada Lovelace")


@pytest.fixture
def rp(factories):
    """A confidential relying party (client_secret_basic, PKCE required)."""
    return factories.client()


@pytest.fixture
def browser():
    with new_browser() as session:
        yield session
