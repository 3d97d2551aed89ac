"""The black-box flow fixtures (live server URL, a person, a relying party,
a browser), shared with tests/flows."""

from tests.flows.conftest import base_url, browser, person, rp

__all__ = ["base_url", "browser", "person", "rp"]
