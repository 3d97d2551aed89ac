"""The flow tests' fixtures (a person, a confidential client, a browser)."""

from tests.flows.conftest import browser, person, rp

__all__ = ["browser", "person", "rp"]
