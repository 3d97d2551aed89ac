"""Browser fixtures: a stand-in relying party that receives the redirect.
The headless Chromium (``chromium``, ``page``) is in
tests/support/chromium.py: one per run, shared with the conformance suite."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class RelyingParty:
    """A tiny HTTP server on 127.0.0.1 that records the requests it gets."""

    def __init__(self):
        self.requests: list[str] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                received.append(self.path)
                body = b"<!doctype html><title>Relying party</title><p>got it</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def relying_party():
    rp = RelyingParty()
    yield rp
    rp.stop()
