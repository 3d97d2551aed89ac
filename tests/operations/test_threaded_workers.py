"""Threaded workers (8 blocking threads, as deploy/serve.py runs them): a
fresh worker's first concurrent requests all succeed, whatever each one
touches first (the signing keys, the database pool, Authlib's server, the
rate limiter, the templates)."""

import threading

import pytest
import requests

from tests.flows.helpers import TIMEOUT

CONCURRENT = 16


def _requests(url, rs, service):
    """One of each kind of first request, four times over."""
    token = {
        "method": "POST",
        "url": url + "/token",
        "data": {"grant_type": "client_credentials"},
        "auth": (service.client_id, service.secret),
    }
    bad_token = {**token, "auth": (service.client_id, "wrong")}
    introspect = {
        "method": "POST",
        "url": url + "/introspect",
        "data": {"token": "not-a-token"},
        "auth": (rs.client_id, rs.secret),
    }
    jwks = {"method": "GET", "url": url + "/jwks.json"}
    login = {"method": "GET", "url": url + "/login"}
    userinfo = {
        "method": "GET",
        "url": url + "/userinfo",
        "headers": {"Authorization": "Bearer x.y.z"},
    }
    kinds = [token, bad_token, introspect, jwks, login, userinfo, token, jwks]
    return [kinds[i % len(kinds)] for i in range(CONCURRENT)]


@pytest.mark.parametrize("round_", range(2))
def test_a_fresh_threaded_workers_first_concurrent_requests_succeed(
    start_server, factories, rs, round_
):
    service = factories.client(machine=True)
    # One worker, eight threads, and no request before the burst.
    server = start_server(workers=1, threads=8, probe=False)
    calls = _requests(server.url, rs, service)
    start = threading.Barrier(len(calls))
    answers = [None] * len(calls)

    def call(i):
        start.wait()
        try:
            answers[i] = requests.request(timeout=TIMEOUT * 3, **calls[i]).status_code
        except requests.RequestException as exc:
            answers[i] = repr(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = {
        "/token": {200, 401},
        "/introspect": {200},
        "/jwks.json": {200},
        "/login": {200},
        "/userinfo": {401},
    }
    for request, answer in zip(calls, answers, strict=True):
        path = "/" + request["url"].split("/", 3)[3]
        assert answer in expected[path], (path, answer, answers)
