"""The access log (app/web/logs.py): one line per request with its route
pattern and request id; codes, tokens and emailed links never printed."""

import json
import re
import secrets
from pathlib import Path

import requests


def _lines(server) -> list[dict]:
    with open(server.log.name) as log:
        return [json.loads(line) for line in log if line.startswith("{")]


def _access(lines, request_id) -> list[dict]:
    return [
        line
        for line in lines
        if line["logger"] == "latchkey.access" and line["request_id"] == request_id
    ]


def test_access_log_names_routes_and_never_secrets(start_server):
    server = start_server(workers=1, threads=2, LATCHKEY_LOG_FORMAT="json")
    secret = {name: secrets.token_urlsafe(24) for name in ("code", "reset", "bearer")}
    sent = []

    def call(method, path, **kwargs):
        request_id = f"test-{secrets.token_hex(8)}"
        headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
        response = requests.request(
            method, server.url + path, headers=headers, timeout=10, **kwargs
        )
        # Echoed back, so a client can quote it to the operator.
        assert response.headers["X-Request-ID"] == request_id
        sent.append((request_id, method, response.status_code))
        return request_id

    # RFC 6749 §4.1.2: a code and state in a query string.
    code_id = call("GET", f"/authorize?code={secret['code']}&state={secret['code']}")
    reset_id = call("GET", f"/password/reset/{secret['reset']}")
    bearer_id = call(
        "GET", "/userinfo", headers={"Authorization": f"Bearer {secret['bearer']}"}
    )
    call(
        "POST",
        "/token",
        data={"grant_type": "authorization_code", "code": secret["code"]},
    )
    server.stop()

    output = Path(server.log.name).read_text()
    for value in secret.values():
        assert value not in output
    lines = _lines(server)
    for request_id, method, status in sent:
        (line,) = _access(lines, request_id)  # exactly one line per request
        assert (line["method"], line["status"]) == (method, status)
        assert line["duration_ms"] >= 0
        assert line["client_ip"] == "127.0.0.1"
    assert _access(lines, reset_id)[0]["route"] == "/password/reset/<token>"
    assert _access(lines, code_id)[0]["route"] == "/authorize"
    assert _access(lines, bearer_id)[0]["route"] == "/userinfo"


def test_request_id_is_made_when_none_or_a_bad_one_is_sent(start_server):
    server = start_server(workers=1, threads=2, LATCHKEY_LOG_FORMAT="json")
    ids = []
    for sent in (None, "two words", "x" * 65, "forged\r\nline"):
        headers = {} if sent is None else {"X-Request-ID": sent}
        try:
            response = requests.get(
                server.url + "/healthz", headers=headers, timeout=10
            )
        except ValueError:  # requests refuses CR/LF in a header itself
            continue
        made = response.headers["X-Request-ID"]
        assert made != sent
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        ids.append(made)
    assert len(set(ids)) == len(ids) >= 3
    server.stop()
    lines = _lines(server)
    for made in ids:
        (line,) = _access(lines, made)
        assert line["route"] == "/healthz"


def test_text_format_carries_the_request_id_too(start_server):
    server = start_server(workers=1, threads=2, LATCHKEY_LOG_FORMAT="text")
    requests.get(
        server.url + "/healthz", headers={"X-Request-ID": "abc-123"}, timeout=10
    )
    server.stop()
    output = Path(server.log.name).read_text()
    assert re.search(r"INFO latchkey\.access \[abc-123\] GET /healthz 200 ", output)
