"""The metadata documents and the JWKS are answered below Flask
(app/oauth/documents.py); the answer must be the one Flask's routes give,
with the same access line, metrics and X-Request-ID, and must follow the
keys when they change. Anything it does not answer reaches Flask.

A request is known to have been answered below Flask when Flask's
``request_started`` signal did not fire for it.
"""

import contextlib
import json
import logging
import time

import pytest
from flask import request_started
from prometheus_client import REGISTRY

from tests.security.test_bad_input_kinds import production_app

PATHS = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/jwks.json",
]
# Rotation's new key is in the JWKS before it signs; the tests' key ring
# checks the database every 0.25 s (conftest.py).
DEADLINE_SECONDS = 10
LATENCY_COUNT = "latchkey_http_request_duration_seconds_count"


@contextlib.contextmanager
def flask_requests(app):
    """The paths of the requests Flask itself handled while inside."""
    seen: list[str] = []

    def started(sender, **_):
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    try:
        yield seen
    finally:
        request_started.disconnect(started, app)


def _comparable(response) -> dict:
    headers = dict(response.headers)
    headers.pop("X-Request-ID")
    return headers


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_answered_below_flask_as_flask_answers(app, client, path, method):
    with flask_requests(app) as seen:
        below = client.open(path, method=method)
        # A query string goes on to Flask's route for the same path.
        through = client.open(path + "?from=flask", method=method)
    assert seen == [path]
    assert below.status_code == through.status_code == 200
    assert _comparable(below) == _comparable(through)
    assert below.data == through.data
    if method == "GET":
        document = json.loads(below.data)
        assert ("keys" if path == "/jwks.json" else "issuer") in document
    else:
        assert below.data == b""
        assert int(below.headers["Content-Length"]) > 0


def test_other_methods_and_repeated_parameters_reach_flask(app, client):
    with flask_requests(app) as seen:
        post = client.post("/jwks.json")
        options = client.options("/.well-known/openid-configuration")
        repeated = client.get("/jwks.json?a=1&a=2")
    assert len(seen) == 3
    assert post.status_code == 405
    assert options.status_code == 200
    assert "GET" in options.headers["Allow"]
    # RFC 6749 §3.1's rule holds on every route (app/web/common.py).
    assert repeated.status_code == 400
    assert repeated.is_json


def test_access_line_metrics_and_request_id(app, client, caplog):
    labels = {"endpoint": "oauth.jwks", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("latchkey_http_requests_total", labels) or 0
    latency = {"endpoint": "oauth.jwks"}
    observed = (
        REGISTRY.get_sample_value(
            "latchkey_http_request_duration_seconds_count", latency
        )
        or 0
    )
    with caplog.at_level(logging.INFO, logger="latchkey.access"):
        kept = client.get("/jwks.json", headers={"X-Request-ID": "rp-42.a:b"})
        made = client.get("/jwks.json", headers={"X-Request-ID": "two words"})
    assert kept.headers["X-Request-ID"] == "rp-42.a:b"
    assert made.headers["X-Request-ID"] != "two words"
    assert len(made.headers["X-Request-ID"]) == 32
    lines = [r for r in caplog.records if r.name == "latchkey.access"]
    assert [line.request_id for line in lines] == [
        "rp-42.a:b",
        made.headers["X-Request-ID"],
    ]
    for line in lines:
        assert line.access["route"] == "/jwks.json"
        assert line.access["method"] == "GET"
        assert line.access["status"] == 200
        assert line.access["client_ip"] == "127.0.0.1"
        assert line.access["duration_ms"] >= 0
    after = REGISTRY.get_sample_value("latchkey_http_requests_total", labels)
    assert after == before + 2
    assert (
        REGISTRY.get_sample_value(
            "latchkey_http_request_duration_seconds_count", latency
        )
        == observed + 2
    )


def test_behind_a_trusted_proxy_the_line_names_the_client(base_env, caplog):
    from app import create_app

    application = create_app({**base_env, "LATCHKEY_TRUSTED_PROXIES": "1"})
    with caplog.at_level(logging.INFO, logger="latchkey.access"):
        response = application.test_client().get(
            "/jwks.json", headers={"X-Forwarded-For": "203.0.113.9"}
        )
    assert response.status_code == 200
    (line,) = [r for r in caplog.records if r.name == "latchkey.access"]
    assert line.access["client_ip"] == "203.0.113.9"


def test_production_with_https_carries_hsts_below_flask(app, base_env):
    prod = production_app(base_env, "https://id.example.com")
    with flask_requests(prod) as seen:
        response = prod.test_client().get(
            "/jwks.json", base_url="https://id.example.com"
        )
    assert seen == []
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_rotated_key_is_published_without_a_restart(app, client):
    def kids() -> set[str]:
        return {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}

    before = kids()
    result = app.test_cli_runner().invoke(args=["keys", "rotate", "--json"])
    assert result.exit_code == 0, result.output
    new = {k["kid"] for k in json.loads(result.output)}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not new <= kids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert new <= kids()
    assert before <= kids()  # the old keys stay for the overlap


def test_a_failure_below_flask_is_answered_by_flask(app, client, monkeypatch):
    ring = app.extensions["latchkey"].keys
    real = ring.jwks_json
    calls = []

    def fails_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database went away for a moment")
        return real()

    monkeypatch.setattr(ring, "jwks_json_if_checked", lambda: None)
    monkeypatch.setattr(ring, "jwks_json", fails_once)
    with flask_requests(app) as seen:
        response = client.get("/jwks.json")
    assert seen == ["/jwks.json"]
    assert response.status_code == 200
    assert "keys" in response.get_json()
    assert len(calls) == 2


@pytest.mark.parametrize(
    "accept",
    ["application/json", "application/jwk-set+json", "text/html", "*/*", ""],
)
def test_any_accept_gets_json_readable_from_any_origin(client, accept):
    # JWKS clients send Accept: application/json (auth0/jwks-rsa-java#59,
    # #77) or expect that type back (logto#3473: KrakenD refuses another);
    # browser-based relying parties need CORS on both (health-cards#107).
    headers = {"Accept": accept, "Origin": "https://rp.example"} if accept else {}
    for path in PATHS:
        response = client.get(path, headers=headers)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert json.loads(response.data)


def test_malformed_requests_change_nothing_and_never_500(app, client):
    # Near-miss paths are Flask's to refuse: a 404, in JSON under the
    # machine paths and a page elsewhere; a body on a GET, an oversized or
    # forged request id are ignored; none reaches a 500 or a document.
    for path in ("/jwks.json/", "/jwks.json%00", "/.well-known/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.is_json, path
    page = client.get("/JWKS.JSON")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    expected = client.get("/jwks.json").data
    with_body = client.get(
        "/jwks.json", data=b"x" * 4096, content_type="application/octet-stream"
    )
    assert with_body.status_code == 200
    assert with_body.data == expected
    for sent in ("x" * 65, "a\tb", "ü"):
        response = client.get("/jwks.json", headers={"X-Request-ID": sent})
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] != sent
        assert len(response.headers["X-Request-ID"]) == 32
