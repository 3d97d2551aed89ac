"""A relying party's back-channel logout endpoint for the tests: a small HTTP
server on 127.0.0.1 that records what is POSTed to it, and the checks a real
relying party makes on a logout token (Back-Channel Logout 1.0 §2.6)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt

from tests.support.oauth import verified_claims

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class RecordingRP:
    """Answers every POST with ``status`` and keeps the request."""

    def __init__(self, port: int = 0, status: int = 200):
        self.status = status
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/backchannel-logout"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self):
        rp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                with rp._lock:
                    rp.requests.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type", ""),
                            "form": parse_qs(body, keep_blank_values=True),
                        }
                    )
                self.send_response(rp.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    @property
    def tokens(self) -> list[str]:
        with self._lock:
            return [r["form"]["logout_token"][0] for r in self.requests]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def verify_logout_token(
    token: str, jwks: jwt.PyJWKClient, issuer: str, client_id: str, alg="RS256"
) -> dict:
    """The claims of ``token`` after every check §2.6 asks of a relying
    party; fails the test if one does not hold."""
    claims = verified_claims(
        token,
        jwks,
        issuer,
        client_id,
        ("jti", "events"),
        alg=alg,  # the client's id_token_signed_response_alg
        typ="logout+jwt",  # §2.4 / §4.1: cannot pass for another JWT
    )
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in claims  # §2.4: prohibited
    assert claims.get("sub") or claims.get("sid")
    assert 0 < claims["exp"] - claims["iat"] <= 120
    return claims
