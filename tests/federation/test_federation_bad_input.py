"""What goes wrong on the way through an upstream provider, and what it must
not do: every case ends on a friendly page with the right status, creates or
links no account, and writes no security event (no account is known).

Callback tampering is done on a real round trip through the upstream
process. ID token tampering needs tokens still signed by the upstream's real
keys: the downstream runs in-process (Flask test client, same database and
providers) and the token response is altered on its way back.
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from app import create_app
from app.extensions import db
from tests.federation.helpers import (
    SLUG,
    assert_failure_page,
    counts,
    events,
    federate,
    sign_in_upstream,
    upstream_redirect,
)
from tests.flows.helpers import TIMEOUT, new_browser


def _get(browser, url):
    return browser.get(url, allow_redirects=False, timeout=TIMEOUT)


def _with_query(url: str, **changes) -> str:
    """``url`` with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def _nothing_happened(app, before, browser=None):
    assert counts(app) == before
    assert events(app) == []
    if browser is not None:
        assert not browser.cookies.get("lk_session")


def _state_of(upstream_location: str) -> str:
    return parse_qs(urlsplit(upstream_location).query)["state"][0]


# -- tampering with the callback -----------------------------------------------------
@pytest.mark.parametrize("state", ["wrong-state", None], ids=["wrong", "missing"])
def test_wrong_or_missing_state(app, base_url, browser, upstream, up_person, state):
    before = counts(app)
    start = upstream_redirect(browser, base_url)
    callback = sign_in_upstream(browser, upstream, start.headers["Location"], up_person)

    response = _get(browser, _with_query(callback, state=state))

    assert_failure_page(response, 400, "expired")
    _nothing_happened(app, before, browser)


def test_replayed_callback(app, base_url, browser, upstream, up_person):
    trip = federate(browser, base_url, upstream, up_person)
    assert trip.response.status_code == 302
    after_first = counts(app)
    first_events = events(app)

    # The same browser, and someone who copied the URL, both get a 400.
    assert_failure_page(_get(browser, trip.callback_url), 400, "expired")
    with new_browser() as thief:
        assert_failure_page(_get(thief, trip.callback_url), 400, "expired")
        assert not thief.cookies.get("lk_session")

    assert counts(app) == after_first
    assert events(app) == first_events


@pytest.mark.parametrize(
    ("error", "status"),
    [("access_denied", 403), ("login_required", 400), ("server_error", 400)],
)
def test_upstream_error_answer(app, base_url, browser, upstream, error, status):
    before = counts(app)
    start = upstream_redirect(browser, base_url)
    callback = f"{base_url}/federation/{SLUG}/callback?" + urlencode(
        {
            "error": error,
            "error_description": "<script>alert(1)</script>",
            "state": _state_of(start.headers["Location"]),
            "iss": upstream.url,
        }
    )

    response = _get(browser, callback)

    assert_failure_page(response, status, "Upstream SSO did not sign you in", error)
    assert "<script>alert(1)</script>" not in response.text
    _nothing_happened(app, before, browser)


@pytest.mark.parametrize(
    "iss",
    ["live_server", "https://evil.example", "http://127.0.0.1:1"],
    ids=["downstream", "elsewhere", "other-port"],
)
def test_iss_of_another_issuer_is_a_mix_up(
    app, base_url, browser, upstream, up_person, iss
):
    iss = base_url if iss == "live_server" else iss
    before = counts(app)
    start = upstream_redirect(browser, base_url)
    callback = sign_in_upstream(browser, upstream, start.headers["Location"], up_person)

    response = _get(browser, _with_query(callback, iss=iss))

    assert_failure_page(response, 400, "different provider")
    _nothing_happened(app, before, browser)


def test_missing_iss_from_an_issuer_that_sends_it(
    app, base_url, browser, upstream, up_person
):
    # RFC 9207 §2.4: the upstream's metadata promises `iss`, so a response
    # without it is rejected.
    metadata = requests.get(
        upstream.url + "/.well-known/openid-configuration", timeout=TIMEOUT
    ).json()
    assert metadata["authorization_response_iss_parameter_supported"] is True
    before = counts(app)
    start = upstream_redirect(browser, base_url)
    callback = sign_in_upstream(browser, upstream, start.headers["Location"], up_person)

    response = _get(browser, _with_query(callback, iss=None))

    assert_failure_page(response, 400)
    _nothing_happened(app, before, browser)


@pytest.mark.parametrize("step", ["start", "callback"])
def test_unknown_provider(app, base_url, browser, step):
    before = counts(app)
    response = _get(browser, f"{base_url}/federation/nobody/{step}?code=x&state=y")
    assert "Traceback" not in response.text
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    _nothing_happened(app, before, browser)


# -- the upstream is down or talks nonsense ----------------------------------------
BROKEN = {
    "html": (200, "text/html", b"<!doctype html><title>Welcome</title><p>hi"),
    "error-page": (503, "text/html", b"<h1>Service Unavailable</h1>"),
    "json-list": (200, "application/json", b"[1, 2, 3]"),
    "json-empty": (200, "application/json", b"{}"),
    "json-string": (200, "application/json", b'"openid"'),
}


class BrokenUpstream:
    """A tiny HTTP server on 127.0.0.1: /<kind>/... answers BROKEN[kind]."""

    def __init__(self):
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                kind = self.path.strip("/").split("/")[0]
                status, content_type, body = BROKEN.get(kind, (404, "text/plain", b""))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
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


@pytest.fixture(scope="module")
def broken_upstream():
    server = BrokenUpstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def closed_port():
    """A port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def odd_providers_file(tmp_path_factory, broken_upstream, closed_port):
    entries = [("down", f"http://127.0.0.1:{closed_port}")] + [
        (f"broken-{kind}", f"{broken_upstream.url}/{kind}") for kind in BROKEN
    ]
    path = tmp_path_factory.mktemp("odd-providers") / "providers.toml"
    path.write_text(
        "".join(
            "[[provider]]\n"
            f'slug = "{slug}"\n'
            f'name = "Provider {slug}"\n'
            f'issuer = "{issuer}"\n'
            'client_id = "latchkey"\n'
            'client_secret = "not-used"\n'
            "trust_email_verified = true\n\n"
            for slug, issuer in entries
        )
    )
    return path


@pytest.fixture(scope="module")
def odd_app(app, base_env, odd_providers_file):
    """The downstream in-process, configured with the odd providers."""
    application = create_app(
        {**base_env, "LATCHKEY_PROVIDERS_FILE": str(odd_providers_file)}
    )
    yield application
    with application.app_context():
        db.engine.dispose()


def test_upstream_down_on_a_live_server(
    app, start_server, odd_providers_file, broken_upstream
):
    server = start_server(LATCHKEY_PROVIDERS_FILE=str(odd_providers_file))
    before = counts(app)
    with new_browser() as browser:
        login = _get(browser, server.url + "/login")
        assert 'id="provider-down"' in login.text
        for slug in ("down", "broken-html"):
            started = time.monotonic()
            response = _get(browser, f"{server.url}/federation/{slug}/start")
            assert_failure_page(response, 502, f"Provider {slug} is not answering")
            assert time.monotonic() - started < 6  # the upstream timeout holds
    _nothing_happened(app, before)


@pytest.mark.parametrize("slug", ["down", *(f"broken-{kind}" for kind in BROKEN)])
def test_upstream_down_or_garbage_at_start(app, odd_app, slug):
    before = counts(app)
    client = odd_app.test_client()

    response = client.get(f"/federation/{slug}/start")

    assert_failure_page(response, 502, "is not answering")
    _nothing_happened(app, before)


def test_upstream_recovers_after_a_garbage_answer(app, broken_upstream, odd_app):
    """A bad discovery answer is not kept: the next attempt asks again."""
    client = odd_app.test_client()
    assert client.get("/federation/broken-json-empty/start").status_code == 502
    good = {
        "issuer": f"{broken_upstream.url}/json-empty",
        "authorization_endpoint": f"{broken_upstream.url}/json-empty/authorize",
        "token_endpoint": f"{broken_upstream.url}/json-empty/token",
        "jwks_uri": f"{broken_upstream.url}/json-empty/jwks.json",
    }
    BROKEN["json-empty"] = (200, "application/json", json.dumps(good).encode())
    try:
        response = client.get("/federation/broken-json-empty/start")
    finally:
        BROKEN["json-empty"] = (200, "application/json", b"{}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(good["authorization_endpoint"])


# -- tampering with the ID token -----------------------------------------------------
class InProcessTrip:
    """The downstream in-process (test client), the upstream for real."""

    def __init__(self, app, upstream, up_person):
        self.client = app.test_client()
        self.upstream = upstream
        self.up_person = up_person

    def callback_path(self) -> str:
        start = self.client.get(f"/federation/{SLUG}/start")
        assert start.status_code == 302, start.text
        with new_browser() as browser:
            url = sign_in_upstream(
                browser, self.upstream, start.headers["Location"], self.up_person
            )
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"

    def run(self):
        response = self.client.get(self.callback_path())
        assert "Traceback" not in response.text
        return response

    def session_cookie(self) -> str | None:
        cookie = self.client.get_cookie("lk_session")
        return cookie.value if cookie else None


def _resign(upstream, id_token: str, change: dict, sign_with=None) -> str:
    """``id_token``'s claims with ``change`` (None deletes), signed again by
    the upstream's real keys (or ``sign_with``'s)."""
    claims = jwt.decode(id_token, options={"verify_signature": False})
    for name, value in change.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    signer = sign_with or upstream.app
    with signer.app_context():
        return signer.extensions["latchkey"].keys.sign(claims, "ES256")


@pytest.fixture
def alter_token(monkeypatch):
    """Rewrite the upstream's token response before the downstream sees it."""

    def install(rewrite):
        real = OAuth2Session.fetch_token

        def fetch_token(self, *args, **kwargs):
            return rewrite(real(self, *args, **kwargs))

        monkeypatch.setattr(OAuth2Session, "fetch_token", fetch_token)

    return install


def test_in_process_trip_signs_in_when_untouched(app, upstream, up_person):
    """The harness itself: with nothing altered, the sign-in works."""
    trip = InProcessTrip(app, upstream, up_person)
    response = trip.run()
    assert response.status_code == 302, response.text
    assert trip.session_cookie()


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"nonce": "not-the-nonce"}, id="wrong-nonce"),
        pytest.param({"nonce": None}, id="missing-nonce"),
        pytest.param({"iss": "https://evil.example"}, id="other-issuer"),
        pytest.param({"aud": "someone-else", "azp": "someone-else"}, id="other-aud"),
        pytest.param({"exp": "past", "iat": "older"}, id="expired"),
        pytest.param({"sub": None}, id="no-sub"),
    ],
)
def test_bad_id_token_is_refused(app, upstream, up_person, alter_token, change):
    change = dict(change)
    if change.get("exp") == "past":
        change.update(exp=_now() - 3600, iat=_now() - 7200)

    def rewrite(token):
        token["id_token"] = _resign(upstream, token["id_token"], change)
        return token

    alter_token(rewrite)
    before = counts(app)
    trip = InProcessTrip(app, upstream, up_person)

    response = trip.run()

    assert_failure_page(response, 400, "Sign-in was not completed")
    assert trip.session_cookie() is None
    _nothing_happened(app, before)


def test_id_token_signed_by_another_key_is_refused(
    app, upstream, up_person, alter_token
):
    def rewrite(token):
        # Signed with the downstream's own key: valid JOSE, wrong signer.
        token["id_token"] = _resign(upstream, token["id_token"], {}, sign_with=app)
        return token

    alter_token(rewrite)
    before = counts(app)
    trip = InProcessTrip(app, upstream, up_person)

    response = trip.run()

    assert_failure_page(response, 400, "Sign-in was not completed")
    assert trip.session_cookie() is None
    _nothing_happened(app, before)


def test_id_token_missing_from_the_token_response(
    app, upstream, up_person, alter_token
):
    def rewrite(token):
        token.pop("id_token")
        return token

    alter_token(rewrite)
    before = counts(app)
    trip = InProcessTrip(app, upstream, up_person)

    response = trip.run()

    assert_failure_page(response, 400, "did not send a valid ID token")
    _nothing_happened(app, before)


def test_upstream_down_at_the_token_endpoint(app, upstream, up_person, monkeypatch):
    def unreachable(self, *args, **kwargs):
        raise requests.ConnectionError("connection refused")

    before = counts(app)
    trip = InProcessTrip(app, upstream, up_person)
    callback = trip.callback_path()
    monkeypatch.setattr(OAuth2Session, "fetch_token", unreachable)

    response = trip.client.get(callback)

    assert_failure_page(response, 502, "is not answering")
    assert trip.session_cookie() is None
    _nothing_happened(app, before)


@pytest.mark.parametrize(
    "change",
    [{"email_verified": False}, {"email_verified": None}, {"email": "not-an-email"}],
    ids=["unverified", "no-email_verified", "bad-email"],
)
def test_email_not_vouched_for_creates_nothing(
    app, upstream, up_person, alter_token, change
):
    # The upstream Latchkey only signs in verified people, so its answer is
    # altered (and signed again by its own keys).
    def rewrite(token):
        token["id_token"] = _resign(upstream, token["id_token"], change)
        return token

    alter_token(rewrite)
    before = counts(app)
    trip = InProcessTrip(app, upstream, up_person)

    response = trip.run()

    assert_failure_page(response, 403, "did not confirm an email")
    assert trip.session_cookie() is None
    _nothing_happened(app, before)
