"""'Sign out of all devices' for accounts with 10 .. 100,000 grants.

Timed two ways, each the median of several runs, with every grant made live
again (untimed) before each run so that each run cuts off all of them:
- the service call, app.devices.services.sign_out_everywhere, in an app
  context of this process (its own transaction and commit included);
- the browser's POST /account/devices/sign-out-all to the live server, for
  a session signed in through the login form just before (untimed).
"""

from __future__ import annotations

import re
import statistics
import time

import requests
from sqlalchemy import event

from app.devices.services import sign_out_everywhere
from app.events.services import Who
from app.extensions import db
from app.models import Account
from bench.data import PASSWORD, revive_grants

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _sign_out(app, account_id: str, record=None) -> float:
    """One sign_out_everywhere call in its own app context; seconds."""
    with app.app_context():
        account = db.session.get(Account, account_id)
        if record is not None:
            event.listen(db.engine, "before_cursor_execute", record)
        try:
            t0 = time.perf_counter()
            sign_out_everywhere(account, Who("127.0.0.1", "latchkey-bench"), "bench")
            db.session.commit()  # what the request's unit of work would do
            elapsed = time.perf_counter() - t0
        finally:
            if record is not None:
                event.remove(db.engine, "before_cursor_execute", record)
        db.session.remove()
    return elapsed


def time_service(
    app, account_id: str, settle_id: str, runs: int, revive: bool = True
) -> tuple[list[float], list[str]]:
    """Seconds per sign_out_everywhere call, and the SQL of the last call.

    With ``revive`` every grant is made live before each run, and two
    untimed sign-outs of ``settle_id`` (an account with no grants) follow,
    so that the after-effects of that big untimed write (SQLite's page
    cache, the WAL) are not charged to the timed call. Without it the
    grants stay cut off from the previous run: a control that shows the
    call's own cost alone.
    """
    times: list[float] = []
    statements: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):
        statements.append(" ".join(statement.split())[:120])

    for _ in range(runs):
        if revive:
            revive_grants(app, account_id)
            _sign_out(app, settle_id)
            _sign_out(app, settle_id)
        statements.clear()
        times.append(_sign_out(app, account_id, record))
    return times, statements


def _csrf(page: requests.Response) -> str:
    match = CSRF.search(page.text)
    if not match:
        raise RuntimeError(f"no CSRF token on {page.url} ({page.status_code})")
    return match.group(1)


def sign_in(browser: requests.Session, url: str, email: str) -> str:
    """Sign in through the form; returns a CSRF token for the next form."""
    form = _csrf(browser.get(url + "/login", timeout=30))
    answer = browser.post(
        url + "/login",
        data={"csrf_token": form, "email": email, "password": PASSWORD, "next": ""},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in failed: {answer.status_code}")
    # The account page carries a form, hence a CSRF token for this session.
    return _csrf(browser.get(url + "/account", timeout=30))


def time_http(app, url: str, account: dict, runs: int) -> list[float]:
    """Seconds per POST /account/devices/sign-out-all, as the client sees it."""
    times = []
    browser = requests.Session()
    for _ in range(runs):
        revive_grants(app, account["account_id"])
        token = sign_in(browser, url, account["email"])
        t0 = time.perf_counter()
        answer = browser.post(
            url + "/account/devices/sign-out-all",
            data={"csrf_token": token, "password": ""},
            allow_redirects=False,
            timeout=120,
        )
        times.append(time.perf_counter() - t0)
        if answer.status_code != 302 or "signed_out=all" not in answer.headers.get(
            "Location", ""
        ):
            raise RuntimeError(f"sign-out-all answered {answer.status_code}")
        signed_in = browser.get(url + "/account", allow_redirects=False, timeout=30)
        if signed_in.status_code != 302:
            raise RuntimeError("the browser session survived sign-out-all")
    browser.close()
    return times


def refresh_token_active(url: str, resource_server: tuple, token: str) -> bool:
    answer = requests.post(
        url + "/introspect",
        data={"token": token, "token_type_hint": "refresh_token"},
        auth=resource_server,
        timeout=30,
    )
    answer.raise_for_status()
    return bool(answer.json()["active"])


def measure(app, url: str, resource_server: tuple, account: dict, runs: int) -> dict:
    """Service and HTTP timings for one seeded account, and a check that the
    cut-off is seen by introspection."""
    sample = account["sample_refresh_token"]
    revive_grants(app, account["account_id"])
    live_before = refresh_token_active(url, resource_server, sample)
    settle = account["settle_account_id"]
    service, statements = time_service(app, account["account_id"], settle, runs)
    dead_after = not refresh_token_active(url, resource_server, sample)
    control, _ = time_service(app, account["account_id"], settle, runs, False)
    http = time_http(app, url, account, runs)
    return {
        "runs": runs,
        "service_ms": _ms(service),
        "service_median_ms": _ms([statistics.median(service)])[0],
        "service_no_revive_ms": _ms(control),
        "service_no_revive_median_ms": _ms([statistics.median(control)])[0],
        "http_ms": _ms(http),
        "http_median_ms": _ms([statistics.median(http)])[0],
        "cut_off_seen_by_introspection": live_before and dead_after,
        "service_statements": statements,
    }


def _ms(seconds: list[float]) -> list[float]:
    return [round(t * 1000, 3) for t in seconds]
