"""Fixtures for the federation tests: a person known to the upstream. The
downstream's URL, its keys and browsers that keep cookies for both servers
are the shared ones (tests/support/fixtures.py)."""

import pytest


@pytest.fixture
def up_person(upstream):
    """An account at the upstream provider (its email is verified)."""
    return upstream.factories.account(name="Grace Hopper")
