"""Browser fixtures: one headless Chromium per run (Debian's, not Playwright's
download) and a stand-in relying party that receives the redirect."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium shared by every browser test in the run."""
    if not CHROMIUM.exists():
        # Never a skip: a suite that passes without its browser tests proves
        # nothing about the pages (make test installs chromium first).
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh page in its own context: no cookies carried between tests."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


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
