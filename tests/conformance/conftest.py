"""The conformance suite's fixtures: one node process running a relying party
built on panva's openid-client (rp.mjs), given nothing but the issuer URL;
clients registered with Latchkey through the factories and handed to it;
Chromium (tests/support/chromium.py) as the person. ``issuer`` (the live
server's URL, the only thing the suite knows about Latchkey) and
``person`` are the shared fixtures of tests/support/fixtures.py.

No Latchkey endpoint path appears here or in the tests: the RP finds every
endpoint in the discovery document, and the person follows links and
redirects."""

import pytest

from tests.conformance.relying_party import NodeRP, RegisteredClient


@pytest.fixture(scope="session")
def node_rp(issuer, log_dir):
    rp = NodeRP(issuer, log_dir)
    yield rp
    rp.stop()


@pytest.fixture
def register(factories, node_rp):
    """Register a client with Latchkey (factories) and hand it to the RP,
    which runs discovery for it."""

    def register(
        auth_method="client_secret_basic", metadata=None, **options
    ) -> RegisteredClient:
        """``metadata``: client metadata the RP holds the server to."""
        public = auth_method == "none"
        made = factories.client(public=public, **options)
        answer = node_rp.call(
            "/discovery",
            client_id=made.client_id,
            client_secret=made.secret,
            auth_method=auth_method,
            metadata=metadata or {},
        )
        return RegisteredClient(
            made.client_id, made.secret, auth_method, answer["server_metadata"]
        )

    return register


@pytest.fixture
def web_app(register, node_rp):
    """A confidential web application (client_secret_basic, PKCE)."""
    return register(
        redirect_uri=node_rp.redirect_uri,
        post_logout_redirect_uris=[node_rp.post_logout_redirect_uri],
        name="Conformance web app",
    )


@pytest.fixture
def native_app(register, node_rp):
    """A public client (a native or single-page app): no secret, PKCE."""
    return register(
        auth_method="none",
        redirect_uri=node_rp.redirect_uri,
        name="Conformance native app",
    )


@pytest.fixture
def resource_server(register):
    """An API that introspects the tokens it is shown (RFC 7662 §2.1)."""
    return register(machine=True, may_introspect=True, name="Conformance API")


@pytest.fixture
def page(page):
    """The shared Chromium's fresh page, with more patience: the first
    sign-in of a run (cold workers, argon2) on a busy machine can
    pass the 10 s default. A limit, not a wait: passing runs are as fast."""
    page.set_default_timeout(30_000)
    return page
