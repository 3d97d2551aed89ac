"""Two live server processes on one database and one Redis, as behind a load
balancer (issue 12): "sign out everyone" is seen by both at once. (The
password-guess limit shared across processes is in
tests/security/test_rate_limits.py, the signing keys in
test_key_ring_cluster.py.)"""

import pytest

from tests.flows.device_helpers import (
    STRICT,
    assert_inactive,
    assert_refresh_rejected,
    is_active,
    shared_server,
)
from tests.flows.helpers import new_browser, tokens_for, userinfo


@pytest.fixture(scope="module")
def other_process(request, app, base_env, log_dir):
    """A second server process on the same database and Redis."""
    return shared_server(request, base_env, log_dir, STRICT).url


def test_sign_out_everyone_is_seen_by_both_processes_at_once(
    app, live_server, other_process, factories, rs
):
    servers = (live_server.url, other_process)
    client = factories.client()
    people = [factories.account() for _ in range(2)]
    # Each person signs in through a different process.
    tokens = []
    for person, url in zip(people, servers, strict=True):
        with new_browser() as browser:
            tokens.append(
                tokens_for(
                    browser, url, person, client, scope="openid email offline_access"
                )
            )
    for url in servers:
        for issued in tokens:
            assert is_active(url, rs, issued["access_token"])

    result = app.test_cli_runner().invoke(
        args=["security", "sign-out-everyone", "--yes"]
    )
    assert result.exit_code == 0, result.output

    # The very next request to either process, for either person's tokens.
    for url in servers:
        for issued in tokens:
            assert_inactive(url, rs, issued["access_token"])
            assert_inactive(url, rs, issued["refresh_token"])
            assert userinfo(url, issued["access_token"]).status_code == 401
    for issued, url in zip(tokens, reversed(servers), strict=True):
        assert_refresh_rejected(url, client, issued["refresh_token"])
