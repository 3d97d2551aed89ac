"""/metrics: Prometheus series for requests, latency, tokens by grant,
refresh reuse, rate-limit hits, the outbox backlog and the Redis fallback,
summed over every worker of a live server."""

from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.extensions import db
from app.metrics import KNOWN_METHODS
from app.outbox.services import enqueue
from tests.flows.helpers import (
    TIMEOUT,
    assert_json_error,
    refresh,
    sign_in,
    tokens_for,
)


def _samples(url, **kwargs) -> list:
    response = requests.get(url + "/metrics", timeout=TIMEOUT, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return [
        s for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]  # fmt: skip


def _value(samples, name, **labels) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _client_token(url, client, secret=None):
    return requests.post(
        url + "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret or client.secret),
        timeout=TIMEOUT,
    )


def test_metrics_count_what_every_worker_did(
    app, start_server, factories, browser, person, rp, tmp_path
):
    server = start_server(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        LATCHKEY_REFRESH_GRACE_SECONDS="0",  # any second use is reuse
        LATCHKEY_RATELIMIT_TOKEN_CLIENT="2/minute",
    )
    url = server.url
    service = factories.client(machine=True)
    for _ in range(3):
        assert _client_token(url, service).status_code == 200
    # Failed token requests of one client: the third meets the limit.
    statuses = [_client_token(url, service, "wrong").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    # A code flow, one refresh, then the used refresh token again: reuse.
    sign_in(browser, url, person)
    tokens = tokens_for(browser, url, person, rp, scope="openid offline_access")
    assert refresh(url, rp, tokens["refresh_token"]).status_code == 200
    assert_json_error(refresh(url, rp, tokens["refresh_token"]), 400, "invalid_grant")
    with app.app_context():
        enqueue("email", {"to": "nobody@example.com"})
        db.session.commit()
        db.session.remove()

    samples = _samples(url)
    token_ok = _value(
        samples,
        "latchkey_http_requests_total",
        endpoint="oauth.token",
        method="POST",
        status="200",
    )
    assert token_ok == 5  # 3 client credentials, 1 code, 1 refresh
    assert (
        _value(
            samples,
            "latchkey_http_requests_total",
            endpoint="oauth.token",
            status="401",
        )
        == 2
    )
    assert (
        _value(
            samples,
            "latchkey_http_request_duration_seconds_count",
            endpoint="oauth.token",
        )
        >= 9
    )
    assert (
        _value(samples, "latchkey_tokens_issued_total", grant_type="client_credentials")
        == 3
    )
    assert (
        _value(samples, "latchkey_tokens_issued_total", grant_type="authorization_code")
        == 1
    )
    assert (
        _value(samples, "latchkey_tokens_issued_total", grant_type="refresh_token") == 1
    )
    assert _value(samples, "latchkey_refresh_reuse_detected_total") == 1
    assert (
        _value(samples, "latchkey_security_events_total", tag="oauth:refresh:reused")
        == 1
    )
    assert (
        _value(samples, "latchkey_rate_limit_hits_total", endpoint="oauth.token") == 1
    )
    assert _value(samples, "latchkey_outbox_backlog") >= 1
    assert _value(samples, "latchkey_outbox_oldest_unsent_age_seconds") >= 0
    assert _value(samples, "latchkey_ratelimit_fallback_active") == 0
    # Label values are endpoint names, never raw paths.
    requests.get(url + "/no/such/page/" + "x" * 40, timeout=TIMEOUT)
    names = {
        s.labels.get("endpoint")
        for s in _samples(url)
        if s.name == "latchkey_http_requests_total"
    }
    assert "unmatched" in names
    assert not any("/" in n for n in names)
    # Methods too: one a client makes up is "OTHER", not a new series each.
    for made_up in ("FROBNICATE", "X" * 40):
        requests.request(made_up, url + "/jwks.json", timeout=TIMEOUT)
    methods = {
        s.labels.get("method")
        for s in _samples(url)
        if s.name == "latchkey_http_requests_total"
    }
    assert "OTHER" in methods
    assert methods <= KNOWN_METHODS | {"OTHER"}


def test_the_redis_fallback_is_exposed_and_logged(start_server, tmp_path):
    server = start_server(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        LATCHKEY_REDIS_URL="redis://127.0.0.1:1/0",
    )
    # A rate-limited request: the limiter finds Redis away and falls back.
    response = requests.post(
        server.url + "/token",
        data={"grant_type": "client_credentials"},
        auth=("no-such-client", "wrong"),
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    samples = _samples(server.url)
    assert _value(samples, "latchkey_ratelimit_fallback_active") == 1
    server.log.flush()
    assert "rate limits now count per process" in Path(server.log.name).read_text()


def test_metrics_token_guards_the_endpoint(base_env):
    guarded = create_app({**base_env, "LATCHKEY_METRICS_TOKEN": "s3cret-token"})
    client = guarded.test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert b"latchkey_http_requests_total" in ok.data
    with guarded.app_context():
        db.session.remove()
        db.engine.dispose()
