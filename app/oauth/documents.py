"""The published documents, answered below Flask: the authorization
server's metadata (RFC 8414 §3, OpenID Connect Discovery 1.0 §4) and the
JWKS (RFC 7517 §5).

Each is JSON text built once (the JWKS again when the keys change), which
relying parties and resource servers fetch on every start and on every
``kid`` they do not know. Through Flask, a GET of one cost about 500 µs
of CPU in process, 70 of them here: the rest was the request context and
the hooks that every page needs and these do not (bench/README.md,
"Where issue 13 stands (2026-12-01, second session)"). So
``PublishedDocuments`` answers a GET or HEAD of their paths, without a
query string, from the prebuilt text; any other request, and any that
fails here, goes on to Flask, whose routes for the same paths
(app/oauth/views.py) stay what discovery and the URL map list.

The answer is the one Flask's routes give: the same body, Content-Type,
Cache-Control, CORS and security headers, an X-Request-ID, one access
line and the request metrics; tests/flows/test_published_documents.py
compares the two header by header.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from flask import Flask

from app.config import JWKS_MAX_AGE
from app.metrics import count_request
from app.web.common import SECURITY_HEADERS, strict_transport_security
from app.web.logs import choose_request_id, write_access_line

# How long clients may cache the metadata (Cache-Control max-age, seconds);
# the JWKS's is JWKS_MAX_AGE, which key rotation's timings depend on.
DISCOVERY_MAX_AGE = 300
DISCOVERY_ENDPOINT = "oauth.discovery"
JWKS_ENDPOINT = "oauth.jwks"
_MAX_AGE = {DISCOVERY_ENDPOINT: DISCOVERY_MAX_AGE, JWKS_ENDPOINT: JWKS_MAX_AGE}


def document_headers(max_age: int) -> list[tuple[str, str]]:
    """The headers of a published document besides its type and length:
    cacheable for ``max_age`` seconds by anyone, readable by any origin's
    scripts (a browser-based relying party fetches both)."""
    return [
        ("Cache-Control", f"public, max-age={max_age}"),
        ("Access-Control-Allow-Origin", "*"),
    ]


class PublishedDocuments:
    """WSGI middleware around Flask's ``wsgi_app``: answers GET and HEAD of
    the metadata and JWKS paths (those of the ``oauth.discovery`` and
    ``oauth.jwks`` routes) itself. Install it once every blueprint is
    registered and the discovery document is built."""

    def __init__(self, app: Flask, wrapped: Callable):
        self._app = app
        self._wrapped = wrapped
        self._services = app.extensions["latchkey"]
        after_id = list(SECURITY_HEADERS)
        hsts = strict_transport_security(app.config["LATCHKEY"])
        if hsts:
            after_id.append(("Strict-Transport-Security", hsts))
        self._after_id = after_id
        # path -> (endpoint, route pattern, the headers between the length
        # and the request id), built once. Read from the URL map, so a
        # path is answered here exactly when Flask has the route.
        self._paths: dict[str, tuple[str, str, list[tuple[str, str]]]] = {}
        for rule in app.url_map.iter_rules():
            if rule.endpoint in _MAX_AGE:
                headers = document_headers(_MAX_AGE[rule.endpoint])
                self._paths[rule.rule] = (rule.endpoint, rule.rule, headers)
        self._encoded: dict[str, tuple[str, bytes]] = {}

    def _text(self, endpoint: str) -> str:
        if endpoint == DISCOVERY_ENDPOINT:
            return self._services.discovery_json
        text = self._services.keys.jwks_json_if_checked()
        if text is None:
            # Time to ask the database whether the keys changed.
            with self._app.app_context():
                text = self._services.keys.jwks_json()
        return text

    def _body(self, endpoint: str) -> bytes:
        text = self._text(endpoint)
        cached = self._encoded.get(endpoint)
        if cached is None or cached[0] is not text:
            cached = self._encoded[endpoint] = (text, text.encode())
        return cached[1]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        found = self._paths.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "")
        query = environ.get("QUERY_STRING")
        if found is None or method not in ("GET", "HEAD") or query:
            return self._wrapped(environ, start_response)
        endpoint, route, headers = found
        try:
            body = self._body(endpoint)
        except Exception:  # Flask answers it, and logs why
            return self._wrapped(environ, start_response)
        rid = choose_request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *headers,
                ("X-Request-ID", rid),
                *self._after_id,
            ],
        )
        seconds = time.perf_counter() - started
        write_access_line(
            method, route, 200, seconds, environ.get("REMOTE_ADDR", ""), rid
        )
        count_request(endpoint, method, 200, seconds)
        return [body] if method == "GET" else []
