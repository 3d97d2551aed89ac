"""Shared helpers for the black-box flow tests.

A "browser" is a plain requests.Session that keeps cookies and signs in
through the HTML forms, CSRF token and all; ``walk_authorize`` drives it from
/authorize through the login and consent pages to the redirect back to the
client, which is never followed (nothing listens on the redirect URI).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import parse_qs, urljoin, urlparse

import requests

from tests.support.oauth import pkce_pair

TIMEOUT = 10
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

_INPUT = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')
_FORM = re.compile(
    r'<form\b[^>]*method="post"(?:[^>]*action="([^"]*)")?', re.IGNORECASE
)


# -- encoding ----------------------------------------------------------------
def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- HTML forms --------------------------------------------------------------
def form_inputs(html: str) -> dict[str, str]:
    """name -> value of every <input> on the page."""
    fields = {}
    for tag in _INPUT.findall(html):
        attrs = {k.lower(): unescape(v) for k, v in _ATTR.findall(tag)}
        if "name" in attrs:
            fields[attrs["name"]] = attrs.get("value", "")
    return fields


def csrf_token(html: str) -> str:
    token = form_inputs(html).get("csrf_token")
    assert token, "the page has no csrf_token field"
    return token


def is_login_page(response: requests.Response) -> bool:
    return (
        response.status_code == 200
        and urlparse(response.url).path == "/login"
        and 'name="password"' in response.text
    )


def is_consent_page(response: requests.Response) -> bool:
    return response.status_code == 200 and 'id="approve"' in response.text


def new_browser() -> requests.Session:
    browser = requests.Session()
    browser.headers["User-Agent"] = BROWSER_UA
    return browser


def submit_login(
    browser: requests.Session, base_url: str, page: requests.Response, email, password
) -> requests.Response:
    """Post the login form shown on ``page`` (keeping its hidden ``next``)."""
    fields = form_inputs(page.text)
    return browser.post(
        base_url + "/login",
        data={
            "csrf_token": fields["csrf_token"],
            "next": fields.get("next", ""),
            "email": email,
            "password": password,
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def sign_in(browser: requests.Session, base_url: str, account) -> requests.Response:
    """Sign ``browser`` in through the HTML login form; asserts it worked."""
    page = browser.get(base_url + "/login", timeout=TIMEOUT)
    assert is_login_page(page), page.text
    response = submit_login(browser, base_url, page, account.email, account.password)
    assert response.status_code == 302, response.text
    assert browser.cookies.get("lk_session")
    return response


def form_action(page: requests.Response) -> str:
    """The absolute URL the page's (first) POST form submits to."""
    match = _FORM.search(page.text)
    assert match, "the page has no POST form"
    return urljoin(page.url, unescape(match.group(1) or ""))


def submit_consent(
    browser: requests.Session, page: requests.Response, approve=True
) -> requests.Response:
    """Press Allow or Deny on a consent page."""
    button = {"approve": "Allow"} if approve else {"deny": "Deny"}
    return browser.post(
        form_action(page),
        data={"csrf_token": csrf_token(page.text), **button},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


# -- /authorize ---------------------------------------------------------------
@dataclass
class Walk:
    """Where a walk through /authorize ended, and which pages it showed."""

    response: requests.Response
    pages: list[str] = field(default_factory=list)
    shown: dict[str, requests.Response] = field(default_factory=dict)

    @property
    def location(self) -> str:
        assert self.response.status_code in (302, 303), (
            self.response.status_code,
            self.response.text[:500],
        )
        return self.response.headers["Location"]

    @property
    def query(self) -> dict[str, str]:
        """The redirect's query; every parameter must appear exactly once."""
        params = parse_qs(urlparse(self.location).query, keep_blank_values=True)
        for name, values in params.items():
            assert len(values) == 1, f"{name} repeated in {self.location}"
        return {name: values[0] for name, values in params.items()}

    def redirect_base(self) -> str:
        parsed = urlparse(self.location)
        return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"


def walk_authorize(
    browser: requests.Session,
    base_url: str,
    request: dict | str,
    account=None,
    approve: bool | None = True,
) -> Walk:
    """Follow /authorize as a person would, stopping at the first redirect that
    leaves the server. ``request`` is a full URL or the query parameters.

    The login page is filled in with ``account`` (stop there if None); the
    consent page is answered with ``approve`` (stop there if None).
    """
    if isinstance(request, str):
        response = browser.get(request, allow_redirects=False, timeout=TIMEOUT)
    else:
        response = browser.get(
            base_url + "/authorize",
            params=request,
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    walk = Walk(response)
    for _ in range(12):
        assert "Traceback" not in response.text
        if response.is_redirect:
            target = urljoin(response.url, response.headers["Location"])
            if not target.startswith(base_url + "/"):
                return walk
            response = browser.get(target, allow_redirects=False, timeout=TIMEOUT)
        elif is_login_page(response):
            walk.pages.append("login")
            walk.shown.setdefault("login", response)
            if account is None:
                return walk
            response = submit_login(
                browser, base_url, response, account.email, account.password
            )
        elif is_consent_page(response):
            walk.pages.append("consent")
            walk.shown.setdefault("consent", response)
            if approve is None:
                return walk
            response = submit_consent(browser, response, approve)
        else:
            return walk
        walk.response = response
    raise AssertionError("too many steps through /authorize")


@dataclass
class AuthRequest:
    """One authorization request a relying party makes, and what it keeps."""

    client: object
    scope: str = "openid email profile"
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    nonce: str | None = field(default_factory=lambda: secrets.token_urlsafe(12))
    verifier: str | None = None
    challenge: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def make(cls, client, scope="openid email profile", pkce=True, **extra):
        verifier, challenge = pkce_pair() if pkce else (None, None)
        return cls(
            client=client,
            scope=scope,
            verifier=verifier,
            challenge=challenge,
            extra=extra,
        )

    def params(self) -> dict:
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.client.redirect_uri,
            "scope": self.scope,
            "state": self.state,
        }
        if self.nonce:
            params["nonce"] = self.nonce
        if self.challenge:
            params["code_challenge"] = self.challenge
            params["code_challenge_method"] = "S256"
        params.update(self.extra)
        return {k: v for k, v in params.items() if v is not None}


def get_code(browser, base_url, auth: AuthRequest, account) -> str:
    """Walk the whole authorization and return the code (state checked)."""
    walk = walk_authorize(browser, base_url, auth.params(), account=account)
    query = walk.query
    assert "code" in query, walk.location
    assert query["state"] == auth.state
    return query["code"]


# -- /token ------------------------------------------------------------------
def client_auth(client) -> tuple[tuple[str, str] | None, dict]:
    """(HTTP basic auth, extra form fields) for a client: basic if it has a
    secret, client_id in the body if public."""
    if client.secret:
        return (client.client_id, client.secret), {}
    return None, {"client_id": client.client_id}


def token_request(base_url, data: dict, client=None, **kwargs) -> requests.Response:
    auth = None
    if client is not None:
        auth, extra = client_auth(client)
        data = {**extra, **data}
    kwargs.setdefault("auth", auth)
    return requests.post(base_url + "/token", data=data, timeout=TIMEOUT, **kwargs)


def redeem_code(base_url, auth: AuthRequest, code: str, **overrides):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": auth.client.redirect_uri,
    }
    if auth.verifier:
        data["code_verifier"] = auth.verifier
    data.update(overrides)
    return token_request(base_url, data, client=auth.client)


def tokens_for(browser, base_url, account, client, **auth_options) -> dict:
    """A whole code flow; returns the token response JSON (asserted 200)."""
    auth = AuthRequest.make(client, **auth_options)
    code = get_code(browser, base_url, auth, account)
    response = redeem_code(base_url, auth, code)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(base_url, client, refresh_token: str) -> requests.Response:
    return token_request(
        base_url,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        client=client,
    )


def userinfo(base_url, access_token: str, method="GET") -> requests.Response:
    return requests.request(
        method,
        base_url + "/userinfo",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )


# -- assertions --------------------------------------------------------------
def assert_json_error(response: requests.Response, status: int, error: str) -> dict:
    """The response is ``status`` with a JSON body whose error is ``error``."""
    assert "Traceback" not in response.text
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    return body


def assert_error_redirect(walk: Walk, redirect_uri: str, error: str, state, issuer):
    """RFC 6749 §4.1.2.1 error redirect to the client, with RFC 9207 iss."""
    assert walk.redirect_base() == redirect_uri
    query = walk.query
    assert query["error"] == error, query
    assert "code" not in query
    assert query.get("state") == state
    assert query["iss"] == issuer
    return query


def assert_error_page(response: requests.Response, error: str | None = None):
    """A local 400 page, never a redirect to an untrusted URI."""
    assert "Traceback" not in response.text
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    if error:
        assert f"<code>{error}</code>" in response.text
