"""The machinery of the bad-input sweep (test_bad_input_sweep.py): what
strangers send, which fields each route reads, and how a request is built.

Nothing here names a route to sweep: routes come from ``app.url_map``, and
the fields of each from the forms its pages show plus the parameters the
RFCs give the protocol endpoints (PROTOCOL_PARAMS), so a new route or a new
form field is swept without a line here.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import quote, urlencode, urlsplit

from werkzeug.routing import Rule

# -- odd values ----------------------------------------------------------------


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(header, payload, signature=b"\x00" * 64) -> str:
    return f"{_b64(header)}.{_b64(payload)}.{_b64(signature)}"


# JWTs that no Latchkey key signed, shaped to trip whoever reads their
# header or claims before checking types (RFC 7515 §4, RFC 7519 §4).
MALFORMED_JWTS = [
    # Header members of the wrong JSON type (issue 8's own example first).
    _jwt({"alg": "ES256", "kid": ["x"], "typ": "at+jwt"}, {"sub": "x"}),
    _jwt(["alg", "ES256"], {"sub": "x"}),
    _jwt({"alg": 5, "kid": {"a": 1}, "crit": ["exp"]}, {"exp": "soon"}),
    _jwt({"alg": "none"}, {"sub": "x", "aud": "x", "exp": 9999999999}, b""),
    _jwt({"alg": "HS256", "kid": "x"}, {"sub": "x", "sid": "x"}),
    _jwt({"alg": "RS256", "jku": "http://127.0.0.1:1/jwks", "x5u": 1}, [1, 2]),
    _jwt({"alg": "ES256", "typ": "JWT"}, {"iss": [], "aud": {}, "iat": "x"}),
    _jwt({"alg": "ES256"}, b"not json"),
    _jwt({"alg": "ES256", "kid": "\x00"}, {"events": "x", "sid": 5}),
    "eyJhbGciOiJFUzI1NiJ9",
    "a.b.c",
    "e30.e30.",
    "....",
    "eyJ!!!.eyJ###.$$$",
]

# name -> a value no field of that kind should accept (or, for free text,
# should store harmlessly).
ODD_VALUES = {
    "quote": "co\"de'`\\",
    "markup": "<script>alert(1)</script>&amp;",
    "nul": "a\x00b",
    "crlf": "a\r\nSet-Cookie: x=1",
    "unicode": "Zoë \u202e\U0001f600\ufeff",
    "long": "x" * 5000,
    "negative": "-1",
    "huge": "1e309",
    "address_list": "someone@example.com,other@example.com",
    "blank": "   ",
    "empty": "",
    "jwt": None,  # one of MALFORMED_JWTS, chosen per request
}

# Protocol parameters per endpoint, from the specifications (RFC 6749
# §4.1.1/§4.1.3/§6, RFC 7636 §4.3, RFC 7009 §2.1, RFC 7662 §2.1, RFC 8628
# §3.1/§3.4, OIDC Core §3.1.2.1, RP-Initiated Logout §2, Back-Channel
# Logout §2.5); forms add what their pages show.
PROTOCOL_PARAMS = {
    "oauth.authorize": [
        "response_type", "client_id", "redirect_uri", "scope", "state",
        "nonce", "code_challenge", "code_challenge_method", "prompt",
        "max_age", "login_hint", "id_token_hint", "request", "request_uri",
        "response_mode", "claims", "display", "ui_locales", "acr_values",
    ],
    "oauth.token": [
        "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token",
        "scope", "device_code", "client_id", "client_secret",
    ],
    "oauth.userinfo": ["access_token"],
    "oauth_api.introspect": ["token", "token_type_hint"],
    "oauth_api.revoke": ["token", "token_type_hint"],
    "oauth_api.device_authorization": ["client_id", "scope", "device_name"],
    "logout.end_session_endpoint": [
        "id_token_hint", "post_logout_redirect_uri", "state", "client_id",
        "logout_hint", "ui_locales",
    ],
    "federation.callback": ["code", "state", "error", "error_description", "iss"],
    "federation.backchannel_logout": ["logout_token"],
    "devices.link_decide": ["user_code", "decision"],
}  # fmt: skip

# Parameters that carry a JWT somewhere in Latchkey: every route gets them.
JWT_PARAMS = ["token", "id_token_hint", "logout_token"]
# Where a route reads one of these, it gets every malformed JWT.
JWT_READERS = {*JWT_PARAMS, "access_token", "refresh_token", "code", "device_code"}

# Endpoints that read a Bearer token (RFC 6750 §2.1) get every malformed
# JWT there; other routes get one.
BEARER_READERS = {"oauth.userinfo"}

# Fields whose every value is legitimate content (names, new passwords,
# opaque state echoed back, a "next" that is sanitised): an odd value there
# may be stored, so those requests are checked for 5xx only.
FREE_TEXT = {
    "name",
    "state",
    "nonce",
    "login_hint",
    "next",
    "device_name",
    "ui_locales",
    "error_description",
    "signup.signup:password",
    "passwords.reset:password",
    "passwords.change:password",
    "passwords.change:sign_out_everywhere",
    "passwords.reset:sign_out_everywhere",
    # Advisory by OIDC Core §3.1.2.1 and §5.5 (voluntary claims): the OP
    # may ignore what it cannot use (app/oauth/authorize_params.py).
    "oauth.authorize:display",
    "oauth.authorize:acr_values",
    "oauth.authorize:claims",
    "oauth.authorize:id_token_hint",
}
# Space-separated lists: spaces only are a list of no values, as omitted.
SPACE_LISTS = {"prompt", "acr_values", "ui_locales"}
# Submit buttons: any value means "pressed", so with a good CSRF token they
# act; only the token itself is swept for them.
BUTTONS = {"approve", "deny", "confirm", "cancel"}


def is_free_text(endpoint: str, name: str) -> bool:
    return name in FREE_TEXT or f"{endpoint}:{name}" in FREE_TEXT


# -- what each route reads -------------------------------------------------------
_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_FIELD = re.compile(r"<(?:input|select|textarea|button)\b([^>]*)>", re.I)
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def forms_on(page_path: str, html: str) -> list[tuple[str, set[str]]]:
    """(action path, field names) of every POST form on a page."""
    found = []
    for attrs, body in _FORM.findall(html):
        form_attrs = {k.lower(): unescape(v) for k, v in _ATTR.findall(attrs)}
        if form_attrs.get("method", "get").lower() != "post":
            continue
        action = urlsplit(form_attrs.get("action") or page_path).path or page_path
        names = set()
        for tag in _FIELD.findall(body):
            tag_attrs = {k.lower(): unescape(v) for k, v in _ATTR.findall(tag)}
            if tag_attrs.get("name"):
                names.add(tag_attrs["name"])
        found.append((action, names))
    return found


@dataclass
class Route:
    rule: Rule
    method: str
    fields: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return self.rule.endpoint

    def __str__(self) -> str:
        return f"{self.method} {self.rule.rule}"


def routes_of(app, form_fields: dict[str, set[str]]) -> list[Route]:
    """Every (rule, method) of the URL map, with the fields it reads."""
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            names = set(PROTOCOL_PARAMS.get(rule.endpoint, ()))
            if method == "POST":
                names |= form_fields.get(rule.endpoint, set())
            routes.append(Route(rule, method, sorted(names)))
    return routes


# -- building a request -----------------------------------------------------------
@dataclass
class Case:
    """One request of the sweep, and what it may do."""

    route: Route
    label: str
    path: str
    params: list[tuple[str, object]] = field(default_factory=list)
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None
    json_body: object = None
    # Only free text was odd: the request may legitimately store it.
    may_change: bool = False

    def send(self, client):
        method = self.route.method
        kwargs = {"headers": self.headers}
        params = [(k, v() if callable(v) else v) for k, v in self.params]
        if method == "GET":
            if self.body is not None:
                kwargs["query_string"] = self.body.decode("ascii")
            else:
                kwargs["query_string"] = params
            return client.open(self.path, method="GET", **kwargs)
        if self.json_body is not None:
            body = self.json_body
            if isinstance(body, dict):
                body = {k: v() if callable(v) else v for k, v in body.items()}
            return client.open(self.path, method=method, json=body, **kwargs)
        if self.body is not None:
            return client.open(
                self.path,
                method=method,
                data=self.body,
                content_type=self.content_type,
                **kwargs,
            )
        files = any(v is FILE for _, v in params)
        data = _multi(params)
        if files:
            return client.open(
                self.path,
                method=method,
                data=data,
                content_type="multipart/form-data",
                **kwargs,
            )
        return client.open(self.path, method=method, data=data, **kwargs)

    def __str__(self) -> str:
        shown = [
            (k, v if isinstance(v, str) else "<fresh>" if callable(v) else "<file>")
            for k, v in self.params
        ]
        return f"{self.route} [{self.label}] path={self.path!r} params={shown!r:.300}"


def _multi(params):
    from werkzeug.datastructures import MultiDict

    return MultiDict(
        [
            (k, (io.BytesIO(b"x" * 10), "upload.txt") if v is FILE else v)
            for k, v in params
        ]
    )


FILE = object()  # a multipart file part in place of a text field


def fill_path(rule: Rule, good: dict[str, str], odd: str | None = None) -> str:
    """The rule's path with its variables filled: good values, or ``odd``
    (URL-quoted as a browser would send it) in every variable."""
    values = {}
    for name in rule.arguments:
        values[name] = odd if odd is not None else good.get(name, "x")
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", quote(value, safe=""), path)
    return path


class Sweep:
    """Builds the cases for one signed-in state, deterministically from a
    seed: every field of every route gets ``per_field`` odd values drawn
    from ODD_VALUES, plus every request shape (file part, JSON body,
    repeated parameter, invalid UTF-8, empty body, malformed Bearer
    token, odd path variables)."""

    def __init__(self, good: dict, seed: int, per_field: int = 4):
        self.good = good
        self.rng = random.Random(seed)
        self.per_field = per_field

    def _odd(self, kind: str) -> str:
        if kind == "jwt":
            return self.rng.choice(MALFORMED_JWTS)
        return ODD_VALUES[kind]

    def _rest(self, route: Route, except_name: str, with_rest: bool):
        """The other fields at good values (when ``with_rest``); the CSRF
        token always, since it is ambient like the session cookie."""
        params = []
        for name in route.fields:
            if name == except_name or name in BUTTONS:
                continue
            if name == "csrf_token" or with_rest:
                value = self._good(route, name)
                if value is not None:
                    params.append((name, value))
        return params

    def _good(self, route: Route, name: str):
        """A good value for ``name``, or a callable that makes a fresh one
        each time the request is sent (a nonce is good once, OIDC Core
        §15.5.2, and a case may be sent twice)."""
        return self.good.get(f"{route.endpoint}:{name}", self.good.get(name))

    def cases(self, route: Route, path_good: dict) -> list[Case]:
        path = fill_path(route.rule, path_good)
        out = []
        own = [n for n in route.fields if n not in BUTTONS]
        extra = [n for n in JWT_PARAMS if n not in route.fields]
        for name in own + extra:
            free = is_free_text(route.endpoint, name)
            # The other fields are good only when this one is the route's
            # own and not free text: then the odd value alone must stop it.
            with_rest = name in own and not free
            # A parameter the route does not read goes without even the
            # CSRF token: on a form with no other field (sign out) it would
            # otherwise be a good request with noise.
            rest = self._rest(route, name, with_rest) if name in own else []
            kinds = ["jwt"] if name in JWT_PARAMS else []
            # A parameter the route does not read needs fewer values.
            kinds += self.rng.sample(
                sorted(ODD_VALUES), self.per_field if name in own else 1
            )
            for kind in dict.fromkeys(kinds):
                out.append(
                    Case(
                        route,
                        f"{name}={kind}",
                        path,
                        [*rest, (name, self._odd(kind))],
                        # RFC 6749 §3.1: a parameter without a value is as
                        # if omitted, and omitting an optional one is fine.
                        may_change=free
                        or kind == "empty"
                        or (kind == "blank" and name in SPACE_LISTS),
                    )
                )
            if name in own and name in JWT_READERS:
                # A parameter that carries a JWT here gets every malformed one.
                out += [
                    Case(route, f"{name}=jwt#{i}", path, [*rest, (name, jwt)])
                    for i, jwt in enumerate(MALFORMED_JWTS)
                ]
            if name in own:
                out += self._shapes(route, path, name, rest, free)
        out += self._whole_request(route, path)
        if route.rule.arguments:
            for kind in ("quote", "unicode", "nul", "crlf", "markup", "jwt"):
                odd_path = fill_path(route.rule, path_good, self._odd(kind))
                rest = self._rest(route, "", True)
                out.append(Case(route, f"path={kind}", odd_path, rest))
        return out

    def _shapes(self, route, path, name, rest, free) -> list[Case]:
        good = self._good(route, name) or "x"
        cases = [
            Case(route, f"{name} twice", path, [*rest, (name, good), (name, good)]),
        ]
        if route.method != "GET":
            cases.append(Case(route, f"{name}=file", path, [*rest, (name, FILE)]))
        raw = urlencode([(k, v() if callable(v) else v) for k, v in rest]).encode()
        raw += (b"&" if raw else b"") + f"{name}=".encode() + b"%ff%fe%c0%80"
        cases.append(
            Case(
                route,
                f"{name}=invalid UTF-8",
                path,
                body=raw,
                content_type="application/x-www-form-urlencoded",
                may_change=free,
            )
        )
        return cases

    def _whole_request(self, route: Route, path: str) -> list[Case]:
        rest = self._rest(route, "", True)
        csrf = {"X-CSRFToken": self.good.get("csrf_token", "")}
        bearers = (
            MALFORMED_JWTS
            if route.endpoint in BEARER_READERS
            else [self.rng.choice(MALFORMED_JWTS)]
        )
        cases = [
            Case(route, f"Bearer jwt#{i}", path, [],
                 headers={"Authorization": "Bearer " + jwt})
            for i, jwt in enumerate(bearers)
        ]  # fmt: skip
        cases += [
            Case(route, "empty body", path, body=b"", content_type=None),
            Case(route, "Basic garbage", path,
                 headers={"Authorization": "Basic ???"}),
        ]  # fmt: skip
        if route.method != "GET" and route.fields:
            typed = {name: [1, {"a": None}] for name, _ in rest}
            typed.update({n: 12345 for n in route.fields if n not in dict(rest)})
            cases += [
                Case(route, "JSON of the form", path, headers=csrf,
                     json_body=dict(rest)),
                Case(route, "JSON wrong types", path, headers=csrf, json_body=typed),
                Case(route, "JSON array", path, headers=csrf, json_body=[1, "a"]),
                Case(route, "text/plain body", path, body=b"a=b\x00",
                     content_type="text/plain"),
            ]  # fmt: skip
        return cases
