"""Fixtures for the federation tests: the downstream's URL, a browser that
keeps cookies for both servers, and a person known to the upstream."""

import pytest

from tests.flows.helpers import jwks_client, new_browser


@pytest.fixture
def base_url(live_server):
    return live_server.url


@pytest.fixture
def browser():
    with new_browser() as session:
        yield session


@pytest.fixture
def up_person(upstream):
    """An account at the upstream provider (its email is verified)."""
    return upstream.factories.account(name="Grace Hopper")


@pytest.fixture(scope="session")
def jwks(live_server):
    return jwks_client(live_server.url)
