"""Bad input stays bad input: every route of the app's URL map, signed out
and signed in (with a good CSRF token), is sent what strangers send, and
answers 4xx, never 5xx, and changes no row.

What is sent (tests/security/sweep.py): for each field a route reads (the
fields its pages' forms show, plus the protocol parameters of the RFCs) a
few odd values drawn from a fixed seed (quotes, markup, NUL, CR/LF,
unicode, 5,000 characters, numbers, an address list, blanks, malformed
JWTs) with the route's other fields good, so that the odd value alone has
to stop the request; the field as a multipart file, sent twice, and as
invalid UTF-8; the whole form as JSON (right and wrong types), as a JSON
array and as text/plain; an empty body; a malformed Bearer token and
garbage Basic credentials; odd values in every path variable. Every route
also gets malformed JWTs as ``token``, ``id_token_hint`` and
``logout_token``. ``LATCHKEY_SWEEP_SEED`` draws other values;
``LATCHKEY_SWEEP_REPORT=<file>`` writes every problem found there;
``LATCHKEY_SWEEP_EXACT=1`` compares rows around every request (slower).

"No changed row": every table's content is compared around the cases of
each route that must change nothing (and around each such case when rows
changed, to name it). One change is allowed, and only one: a security event that
records a *failed* attempt (wrong password, wrong code, wrong password
typed again), since telling the owner that someone tried is the point of
that table; such a row authenticates nothing. Every other table (sessions,
grants, tokens, codes, links, consents, outbox, accounts, devices) must
stay exactly as it was. Requests whose only odd value is free text (a
name, a new password, an opaque ``state``; see sweep.FREE_TEXT) may store
it and are held to "no 5xx" only, as are parameters sent empty (RFC 6749
§3.1: as if omitted). The signed-in session is not fresh, so sensitive
forms want the password, and the upstream provider runs, so federation
routes read what they are sent. About 2,700 requests in all.

Rate limits are off for the sweep (a 429 would stop a request before the
code that reads it); tests/security/test_rate_limits.py covers them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter

import pytest
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from app import create_app
from app.events.services import EventTag
from app.extensions import db
from app.keys.admin import ensure_keys
from app.models import BrowserSession
from tests.accounts.helpers import (
    DEVICE_GRANT,
    Web,
    authorize,
    basic_auth,
    device_flow_approved,
    make_stale,
    sign_in,
)
from tests.factories import Factories
from tests.flows.helpers import csrf_token
from tests.security.sweep import Sweep, forms_on, routes_of
from tests.support.oauth import pkce_pair

SEED = int(os.environ.get("LATCHKEY_SWEEP_SEED", "8"))

# A failed attempt may be recorded (the owner should hear of it); nothing
# else may change.
FAILED_ATTEMPTS = {
    str(EventTag.LOGIN_FAILURE),
    str(EventTag.SECOND_FACTOR_FAILURE),
    str(EventTag.REAUTH_FAILURE),
}
# Endpoints where the relying party authenticates: it does, correctly, so
# that the odd values reach what comes after client authentication.
CLIENT_AUTHENTICATED = {"oauth.token", "oauth_api.introspect", "oauth_api.revoke"}
API_PREFIXES = (
    "/token",
    "/revoke",
    "/introspect",
    "/userinfo",
    "/device_authorization",
)


@pytest.fixture(scope="session")
def sweep_app(app, base_env):
    """The app with rate limits off, on the test database."""
    application = create_app(
        {
            **base_env,
            "LATCHKEY_RATELIMIT_ENABLED": "false",
            # Thousands of password checks: argon2 at its cheapest here
            # (the parameters themselves are not what is under test).
            "LATCHKEY_PASSWORD_MEMORY_KIB": "64",
            "LATCHKEY_PASSWORD_TIME_COST": "1",
        }
    )
    with application.app_context():
        ensure_keys(application.extensions["latchkey"].keys)
        db.session.remove()
    return application


@pytest.fixture
def world(sweep_app, upstream):
    """Things bad input could damage: an account signed in (not freshly,
    so sensitive forms want the password), a grant with live tokens, an
    approved device code not yet collected."""
    # The upstream provider runs, so federation routes get as far as
    # reading what they were sent instead of failing to reach it.
    factories = Factories(sweep_app)
    account = factories.account(name="Ada Lovelace")
    rp = factories.client(first_party=True)
    third_party = factories.client(name="Third party")
    tv = factories.client(device=True, grant_types=[DEVICE_GRANT])
    web = Web(sweep_app)
    sign_in(web, account)
    tokens = authorize(web, rp, account)
    device_flow_approved(web, tv)
    make_stale(sweep_app, account.id)
    with sweep_app.app_context():
        # The browser's device (the TV linked by code is the other one).
        device_id = db.session.execute(
            select(BrowserSession.device_id).where(
                BrowserSession.account_id == account.id
            )
        ).scalar()
        db.session.remove()
    return {
        "account": account,
        "rp": rp,
        "third_party": third_party,
        "web": web,
        "tokens": tokens,
        "device_id": device_id,
    }


def snapshot(app) -> dict[str, Counter]:
    """Every row of every table, as comparable tuples."""
    with app.app_context():
        tables = {}
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(table.select()).mappings().all()
            tables[table.name] = Counter(
                tuple((k, repr(v)) for k, v in sorted(row.items())) for row in rows
            )
        db.session.remove()
    return tables


def changed_rows(before, after) -> list[str]:
    changes = []
    for name in before:
        added = after[name] - before[name]
        removed = before[name] - after[name]
        if name == "security_events":
            added = Counter(
                {row: n for row, n in added.items() if _tag(row) not in FAILED_ATTEMPTS}
            )
        changes += [f"{name} + {dict(row)}" for row in added]
        changes += [f"{name} - {dict(row)}" for row in removed]
    return changes


def _tag(row) -> str:
    return dict(row)["tag"].strip("'")


def discover_form_fields(app, webs, extra_pages) -> dict[str, set[str]]:
    """endpoint -> names of the fields its forms send, from every page a
    GET route without variables shows (signed out and in), plus pages that
    need a query (consent, logout confirmation)."""
    adapter = app.url_map.bind("localhost")
    pages = [
        r.rule
        for r in app.url_map.iter_rules()
        if "GET" in r.methods and not r.arguments
    ]
    found: dict[str, set[str]] = {}
    for web in webs:
        for page in [*pages, *extra_pages]:
            response = web.get(page)
            if response.status_code != 200 or "html" not in response.content_type:
                continue
            for action, names in forms_on(page.split("?")[0], response.text):
                try:
                    endpoint, _ = adapter.match(action, method="POST")
                except HTTPException:
                    continue
                found.setdefault(endpoint, set()).update(names)
    return found


def good_values(world, csrf: str) -> dict:
    account, rp = world["account"], world["rp"]
    return {
        "csrf_token": csrf,
        "email": account.email,
        "password": account.password,
        "current_password": account.password,
        "new_email": "moved-" + account.email,
        "name": "Ada",
        "client_id": rp.client_id,
        "redirect_uri": rp.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
        "nonce": lambda: secrets.token_urlsafe(8),
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
        "decision": "approve",
    }


def check(case, response) -> list[str]:
    """4xx or success, never 5xx; OAuth JSON errors on machine endpoints."""
    problems = []
    body = response.get_data(as_text=True)
    if response.status_code >= 500 or "Traceback" in body:
        problems.append(f"{response.status_code} for {case}")
    elif response.status_code == 401 and "WWW-Authenticate" in response.headers:
        pass  # RFC 6750 §3.1: a resource server's error is in the header
    elif response.status_code >= 400 and case.path.startswith(API_PREFIXES):
        payload = response.get_json(silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
            problems.append(f"{response.status_code} not OAuth JSON for {case}")
    return problems


def sweep(app, web, world, csrf: str, seed: int) -> tuple[list[str], int]:
    """Send every case of every route through ``web``; (problems, count).

    Rows are compared around each route's cases that must change nothing
    (one snapshot pair per route keeps ~2,000 requests to seconds); when
    they changed, those cases are sent again one by one to name the one
    that changes rows. Cases that may store free text go last, unchecked
    for rows.
    """
    third = world["third_party"]
    consent = (
        "/authorize?response_type=code&scope=openid&code_challenge_method=S256"
        f"&client_id={third.client_id}&redirect_uri={third.redirect_uri}"
        f"&code_challenge={pkce_pair()[1]}"
    )
    form_fields = discover_form_fields(app, [web], [consent, "/logout/end"])
    maker = Sweep(good_values(world, csrf), seed)
    path_good = {"device_id": world["device_id"], "slug": "upstream"}
    basic = basic_auth(world["rp"])
    problems, count = [], 0
    for route in routes_of(app, form_fields):
        cases = maker.cases(route, path_good)
        for case in cases:
            if route.endpoint in CLIENT_AUTHENTICATED:
                case.headers.setdefault("Authorization", basic["Authorization"])
        strict = [c for c in cases if not c.may_change]
        if os.environ.get("LATCHKEY_SWEEP_EXACT"):
            problems += _attribute(app, web, strict, with_checks=True)
        else:
            problems += _batch(app, web, route, strict)
        for case in cases:
            if case.may_change:
                problems += check(case, case.send(web.client))
        count += len(cases)
    return problems, count


def _batch(app, web, route, cases) -> list[str]:
    """Send ``cases`` between one snapshot pair; on a change, again one
    by one to name the case (or, when a repeat changes nothing, the
    route)."""
    problems = []
    before = snapshot(app)
    for case in cases:
        problems += check(case, case.send(web.client))
    changes = changed_rows(before, snapshot(app))
    if changes:
        problems += _attribute(app, web, cases) or [
            f"{change} after the cases of {route}" for change in changes
        ]
    return problems


def _attribute(app, web, cases, with_checks=False) -> list[str]:
    """Send ``cases`` with one snapshot pair each: which change rows?"""
    found = []
    for case in cases:
        before = snapshot(app)
        response = case.send(web.client)
        if with_checks:
            found += check(case, response)
        found += [f"{c} after {case}" for c in changed_rows(before, snapshot(app))]
    return found


def _report(problems: list[str], count: int, seconds: float) -> str:
    if os.environ.get("LATCHKEY_SWEEP_REPORT"):  # every problem, in full
        with open(os.environ["LATCHKEY_SWEEP_REPORT"], "a") as out:
            out.write("\n".join(problems) + "\n")
    kinds = Counter(" ".join(p.split(" params=")[0].split()[:6]) for p in problems)
    summary = "\n".join(f"{n:4d} x {kind}" for kind, n in kinds.most_common(60))
    shown = "\n".join(p[:600] for p in problems[:25])
    return (
        f"{len(problems)} problems in {count} requests ({seconds:.0f} s)\n"
        f"{summary}\n---\n{shown}"
    )


def test_signed_out_sweep(sweep_app, world):
    web = Web(sweep_app)
    csrf = csrf_token(web.get("/login").text)
    started = time.monotonic()
    problems, count = sweep(sweep_app, web, world, csrf, SEED)
    assert problems == [], _report(problems, count, time.monotonic() - started)


def test_signed_in_sweep(sweep_app, world):
    web = world["web"]
    csrf = csrf_token(web.get("/account/password").text)
    started = time.monotonic()
    problems, count = sweep(sweep_app, web, world, csrf, SEED + 1)
    assert problems == [], _report(problems, count, time.monotonic() - started)
    # Still signed in, and the grant's refresh token still works: the sweep
    # spent nothing.
    assert web.get("/account").status_code == 200
