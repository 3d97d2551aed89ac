"""Rate limits and lock-out: failed sign-ins per account and per address,
counted atomically under parallel attempts, wrong second-factor codes, the
token endpoint per client, the 429 answers, and the owner's one notice.

In-process tests set small limits on the session's app (limits are read
from the settings per request) and give each test its own client address,
so that they share no counter with the rest of the suite; the parallel test
runs against its own live server (two worker processes) sharing Redis.
"""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest
from limits import parse_many
from sqlalchemy import func, select, update

from app.config import RATE_LIMITS
from app.events.services import EventTag
from app.extensions import db
from app.mail.services import open_body
from app.models import Account, OutboxMessage, SecurityEvent
from app.models.base import utcnow
from tests.flows.device_helpers import DEVICE_GRANT
from tests.flows.helpers import TIMEOUT, csrf_token, form_inputs, new_browser

WRONG = "not-the-password-at-all"
PARALLEL = 30


# -- helpers --------------------------------------------------------------------
@pytest.fixture
def set_limits(app, monkeypatch):
    """Set LATCHKEY_RATELIMIT_* values on the running app for one test."""
    settings = app.config["LATCHKEY"]
    monkeypatch.setattr(settings, "ratelimit_enabled", True)

    def set_(**values):
        for name, value in values.items():
            monkeypatch.setitem(settings.ratelimit_limits, name, value)

    return set_


def new_ip() -> str:
    return "10." + ".".join(str(b) for b in secrets.token_bytes(3))


def browser_at(app, ip: str):
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = ip
    return browser


def attempt(app, ip: str, email: str, password: str):
    """One sign-in through the form, from a fresh browser at ``ip``."""
    browser = browser_at(app, ip)
    page = browser.get("/login")
    return browser.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": email,
            "password": password,
            "next": "",
        },
    )


def statuses(app, ip, email, password, times) -> list[int]:
    return [attempt(app, ip, email, password).status_code for _ in range(times)]


def assert_html_429(response):
    assert response.status_code == 429
    assert response.content_type.startswith("text/html")
    assert "Too many attempts" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0


def assert_json_429(response, error="too_many_requests"):
    assert response.status_code == 429
    assert response.content_type.startswith("application/json")
    assert response.get_json()["error"] == error
    assert int(response.headers["Retry-After"]) > 0


def throttle_notices(app, account_id: str, step: str) -> list[dict]:
    with app.app_context():
        payloads = list(
            db.session.execute(
                select(OutboxMessage.payload).where(
                    OutboxMessage.kind == "email",
                    OutboxMessage.dedupe_key.startswith(
                        f"login_throttled:{account_id}:{step}:"
                    ),
                )
            ).scalars()
        )
        db.session.remove()
    return payloads


def events(app, account_id: str, tag: EventTag) -> int:
    with app.app_context():
        count = db.session.execute(
            select(func.count())
            .select_from(SecurityEvent)
            .where(SecurityEvent.account_id == account_id, SecurityEvent.tag == tag)
        ).scalar()
        db.session.remove()
    return count


# -- sign-in ----------------------------------------------------------------------
def test_failed_sign_ins_slow_the_account_down(app, factories, set_limits):
    set_limits(login_account="3/minute", login_ip="1000/minute")
    person = factories.account()
    ip = new_ip()
    assert statuses(app, ip, person.email, WRONG, 3) == [401, 401, 401]
    # Even the right password waits: the account is slowed down, and it is
    # counted per account, not per address.
    assert_html_429(attempt(app, ip, person.email, person.password))
    assert_html_429(attempt(app, new_ip(), person.email, person.password))
    # Other accounts at the same address are not.
    someone = factories.account()
    assert attempt(app, ip, someone.email, someone.password).status_code == 302


def test_only_failures_count(app, factories, set_limits):
    set_limits(login_account="3/minute", login_ip="1000/minute")
    person = factories.account()
    ip = new_ip()
    assert statuses(app, ip, person.email, WRONG, 2) == [401, 401]
    for _ in range(3):
        assert attempt(app, ip, person.email, person.password).status_code == 302
    # A form error never reached the password check either.
    assert attempt(app, ip, person.email, "").status_code == 400
    assert statuses(app, ip, person.email, WRONG, 2) == [401, 429]


def test_unknown_emails_are_limited_the_same_way(app, factories, set_limits):
    set_limits(login_account="2/day", login_ip="1000/minute")
    person = factories.account()
    unknown = f"nobody-{secrets.token_hex(4)}@example.com"
    ip = new_ip()
    known_answers = [attempt(app, ip, person.email, WRONG) for _ in range(4)]
    unknown_answers = [attempt(app, ip, unknown, WRONG) for _ in range(4)]
    assert [r.status_code for r in known_answers] == [401, 401, 429, 429]
    assert [r.status_code for r in unknown_answers] == [401, 401, 429, 429]
    assert known_answers[-1].get_data() == unknown_answers[-1].get_data()
    # The email typed is normalised as accounts store it.
    shouted = f"  {unknown.upper()} "
    assert attempt(app, ip, shouted, WRONG).status_code == 429


def test_the_owner_hears_once_per_window(app, factories, set_limits):
    set_limits(login_account="2/day", login_ip="1000/minute")
    person = factories.account()
    ip = new_ip()
    assert statuses(app, ip, person.email, WRONG, 6) == [401, 401] + [429] * 4
    notices = throttle_notices(app, person.id, "password")
    assert len(notices) == 1
    assert notices[0]["to"] == person.email
    assert notices[0]["subject"] == "Repeated failed sign-ins to your account"
    with app.app_context():
        assert ip in open_body(notices[0])["text"]
    assert events(app, person.id, EventTag.LOGIN_THROTTLED) == 1
    assert events(app, person.id, EventTag.LOGIN_FAILURE) == 2


def test_failed_sign_ins_per_address(app, factories, set_limits):
    set_limits(login_ip="3/minute", login_account="1000/minute")
    ip = new_ip()
    for _ in range(3):
        email = f"guess-{secrets.token_hex(4)}@example.com"
        assert attempt(app, ip, email, WRONG).status_code == 401
    person = factories.account()
    assert_html_429(attempt(app, ip, person.email, person.password))
    assert attempt(app, new_ip(), person.email, person.password).status_code == 302


def test_limits_can_be_turned_off(app, factories, set_limits, monkeypatch):
    set_limits(login_account="1/day", login_ip="1/day")
    monkeypatch.setattr(app.config["LATCHKEY"], "ratelimit_enabled", False)
    person = factories.account()
    assert statuses(app, new_ip(), person.email, WRONG, 4) == [401] * 4


def test_parallel_wrong_passwords_never_pass_the_limit(
    app, factories, start_server, base_env
):
    """30 wrong passwords at once, over two server processes sharing Redis:
    exactly the limit reach the password check (each failed check records
    an event), the others are refused before it."""
    limit = 5
    server = start_server(
        LATCHKEY_RATELIMIT_LOGIN_ACCOUNT=f"{limit}/day",
        LATCHKEY_RATELIMIT_LOGIN_IP="1000/minute",
        LATCHKEY_RATELIMIT_PREFIX=f"latchkey-parallel-{secrets.token_hex(4)}",
    )
    assert base_env["LATCHKEY_REDIS_URL"].startswith("redis://")
    person = factories.account()
    ready = threading.Barrier(PARALLEL)

    def wrong_password(_):
        browser = new_browser()
        page = browser.get(server.url + "/login", timeout=TIMEOUT)
        fields = form_inputs(page.text)
        ready.wait(timeout=30)
        return browser.post(
            server.url + "/login",
            data={
                "csrf_token": fields["csrf_token"],
                "next": "",
                "email": person.email,
                "password": WRONG,
            },
            allow_redirects=False,
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(wrong_password, range(PARALLEL)))
    assert sorted(answers) == [401] * limit + [429] * (PARALLEL - limit)
    assert events(app, person.id, EventTag.LOGIN_FAILURE) == limit
    assert len(throttle_notices(app, person.id, "password")) == 1
    # The right password waits for the window too.
    browser = new_browser()
    page = browser.get(server.url + "/login", timeout=TIMEOUT)
    late = browser.post(
        server.url + "/login",
        data={
            "csrf_token": csrf_token(page.text),
            "email": person.email,
            "password": person.password,
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert late.status_code == 429
    assert late.headers["Content-Type"].startswith("text/html")
    assert int(late.headers["Retry-After"]) > 0


# -- second factor ------------------------------------------------------------------
def with_totp(app, account_id: str) -> pyotp.TOTP:
    secret = pyotp.random_base32(32)
    with app.app_context():
        totp = app.extensions["latchkey"].totp
        db.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(
                totp_secret_encrypted=totp.encrypt(secret), totp_enabled_at=utcnow()
            )
        )
        db.session.commit()
        db.session.remove()
    return pyotp.TOTP(secret)


def second_factor_page(app, ip, person):
    """A browser past the password step; (browser, its 2FA form's token)."""
    browser = browser_at(app, ip)
    page = browser.get("/login")
    answer = browser.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": person.email,
            "password": person.password,
        },
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/login/2fa")
    form = browser.get("/login/2fa")
    return browser, csrf_token(form.get_data(as_text=True))


def test_wrong_codes_are_limited_per_account(app, factories, set_limits):
    set_limits(second_factor="3/day", login_account="1000/minute")
    person = factories.account()
    totp = with_totp(app, person.id)
    wrong = f"{(int(totp.now()) + 500_000) % 1_000_000:06d}"
    browser, token = second_factor_page(app, new_ip(), person)
    answers = [
        browser.post("/login/2fa", data={"csrf_token": token, "code": wrong})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert_html_429(answers[-1])
    # A fresh sign-in (a new pending session, a new cookie) does not start
    # the count again, and the right code waits too.
    browser, token = second_factor_page(app, new_ip(), person)
    late = browser.post("/login/2fa", data={"csrf_token": token, "code": totp.now()})
    assert late.status_code == 429
    recovery = browser.post(
        "/login/2fa", data={"csrf_token": token, "recovery_code": "abcd-efgh-jkmn"}
    )
    assert recovery.status_code == 429
    notices = throttle_notices(app, person.id, "second_factor")
    assert len(notices) == 1
    assert "guessing your sign-in codes" in notices[0]["subject"]


# -- token endpoint ---------------------------------------------------------------
def test_token_endpoint_limits_failures_per_client(app, factories, set_limits):
    set_limits(token_client="3/hour")
    service = factories.client(machine=True)
    http = app.test_client()
    grant = {"grant_type": "client_credentials"}
    for _ in range(3):
        answer = http.post("/token", data=grant, auth=(service.client_id, WRONG))
        assert answer.status_code == 401
        assert answer.get_json()["error"] == "invalid_client"
    assert_json_429(http.post("/token", data=grant, auth=(service.client_id, WRONG)))
    # Keyed by the client named, in the Basic header or the form alike.
    assert_json_429(
        http.post(
            "/token",
            data={**grant, "client_id": service.client_id, "client_secret": WRONG},
        )
    )
    # Another client is not affected, and successes never count.
    other = factories.client(machine=True)
    for _ in range(5):
        answer = http.post("/token", data=grant, auth=(other.client_id, other.secret))
        assert answer.status_code == 200, answer.get_data(as_text=True)


def test_token_limit_is_lazy_but_exact(app, factories, set_limits, monkeypatch):
    """The /token limit is lazy (issue 13): a success never touches the
    store, and each failure is counted after the fact, yet a process that
    has never seen the client fail still answers the failure over the limit
    with 429, so the count holds across processes."""
    from limits import parse

    from app.extensions import limiter
    from app.web import ratelimits

    set_limits(token_client="3/hour")
    service = factories.client(machine=True)
    http = app.test_client()
    grant = {"grant_type": "client_credentials"}
    for _ in range(4):
        ok = http.post("/token", data=grant, auth=(service.client_id, service.secret))
        assert ok.status_code == 200
    key = f"failures:token_client:{service.client_id}"
    args = [key, "failures:token_client"]
    prefix = app.config.get("RATELIMIT_KEY_PREFIX")
    args = [prefix, *args] if prefix else args
    stats = limiter.limiter.get_window_stats(parse("3/hour"), *args)
    assert stats.remaining == 3  # four grants, nothing taken
    statuses = []
    for _ in range(4):
        # Each failure reaches a process that never saw this client fail.
        monkeypatch.setattr(ratelimits, "_FAILING", {})
        answer = http.post("/token", data=grant, auth=(service.client_id, WRONG))
        statuses.append(answer.status_code)
    assert statuses == [401, 401, 401, 429]
    assert_json_429(answer)
    assert 60 < int(answer.headers["Retry-After"]) <= 3600  # the window's reset
    # This process saw the client fail: it now checks before the view, and
    # refuses even the right secret until the window ends.
    assert_json_429(
        http.post("/token", data=grant, auth=(service.client_id, service.secret))
    )


def test_a_lazy_success_skips_flask_limiter_only_while_it_is_the_one_limit(
    app, factories, set_limits, monkeypatch
):
    """A success under a lazy limit calls the view without Flask-Limiter
    (issue 13: ~85 µs of every token request), but only while nothing else
    would be checked for the view: a second limit on it, or any limit
    outside views, puts Flask-Limiter back in the path."""
    from flask_limiter.util import get_qualified_name

    from app.extensions import limiter
    from app.web import ratelimits

    set_limits(token_client="3/hour")
    service = factories.client(machine=True)
    http = app.test_client()
    grant = {"grant_type": "client_credentials"}
    checked: list[str] = []
    real_check = limiter._check_request_limit

    def spy(*args, **kwargs):
        checked.append(kwargs.get("callable_name", ""))
        return real_check(*args, **kwargs)

    monkeypatch.setattr(limiter, "_check_request_limit", spy)

    def succeed():
        answer = http.post(
            "/token", data=grant, auth=(service.client_id, service.secret)
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)

    succeed()
    assert checked == []
    name = get_qualified_name(app.view_functions["oauth.token"])
    decorated = limiter.limit_manager._decorated_limits
    second = limiter.limit("1000/hour")  # what another decorator would add
    monkeypatch.setitem(decorated, name, [*decorated[name], second])
    succeed()
    assert checked == [name]
    monkeypatch.setitem(decorated, name, decorated[name][:1])
    monkeypatch.setattr(ratelimits, "_limits_outside_views", lambda: True)
    succeed()
    assert checked == [name, name]


def test_endpoints_that_skip_the_limiter_carry_no_limit(app):
    """UNLIMITED_ENDPOINTS skip Flask-Limiter entirely; a limit added to one
    of them later must not go unenforced without anyone noticing."""
    from flask_limiter.util import get_qualified_name

    from app.extensions import limiter
    from app.web.ratelimits import UNLIMITED_ENDPOINTS

    for endpoint in UNLIMITED_ENDPOINTS:
        view = app.view_functions[endpoint]
        assert get_qualified_name(view) not in limiter._marked_for_limiting
        assert not limiter.limit_manager.has_hints(endpoint)


def test_device_polling_is_told_to_slow_down(app, tv, set_limits):
    set_limits(token_client="2/hour")
    http = app.test_client()
    poll = {"grant_type": DEVICE_GRANT, "client_id": tv.client_id}
    for _ in range(2):
        answer = http.post("/token", data={**poll, "device_code": "made-up"})
        assert answer.status_code == 400
        assert answer.get_json()["error"] == "invalid_grant"
    assert_json_429(
        http.post("/token", data={**poll, "device_code": "made-up"}), "slow_down"
    )


def test_owners_are_never_locked_out_for_long():
    """Limits an attacker can fill for someone else's account (the email
    typed, the pending account) have windows of minutes."""
    for name in ("login_account", "second_factor", "reset_address"):
        for item in parse_many(RATE_LIMITS[name]):
            assert item.get_expiry() <= 15 * 60, (name, item)


# -- password reset requests --------------------------------------------------------
def ask_for_reset(app, ip: str, email: str):
    browser = browser_at(app, ip)
    page = browser.get("/password/forgot")
    return browser.post(
        "/password/forgot",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": email},
    )


def test_reset_requests_per_email_and_per_address(app, factories, set_limits):
    set_limits(reset_address="2/day", reset_ip="3/day")
    person = factories.account()
    ip = new_ip()
    asked = [ask_for_reset(app, ip, person.email).status_code for _ in range(3)]
    assert asked == [200, 200, 429]
    # From elsewhere too: the mailbox is what is protected.
    assert_html_429(ask_for_reset(app, new_ip(), person.email.upper()))
    # Per address, whatever the emails.
    ip = new_ip()
    emails = [f"someone-{secrets.token_hex(4)}@example.com" for _ in range(4)]
    asked = [ask_for_reset(app, ip, email).status_code for email in emails]
    assert asked == [200, 200, 200, 429]


# -- the explicit failure signal -----------------------------------------------
def test_every_failure_limit_is_told_its_failures_by_name():
    """Issue 10: a failure limit never infers a failure from the response
    (a status code, a redirect target, an error string); the code that
    judged the attempt calls failed_attempt(name). So no failure_limit in
    app/ is given anything but its name, its key and its options."""
    import ast
    from pathlib import Path

    import app as package

    calls = []
    for path in Path(package.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "failure_limit"
            ):
                calls.append(path.name)
                assert len(node.args) == 2, path
                assert {k.arg for k in node.keywords} <= {"on_breach", "lazy"}, path
    assert len(calls) >= 9  # sign-in, 2FA, mail, re-auth, /link, /token, …


def test_a_failure_must_name_a_limit_that_exists(app):
    from app.web.ratelimits import failed_attempt

    with app.test_request_context("/"), pytest.raises(ValueError, match="nope"):
        failed_attempt("reauth", "nope")


def test_wrong_passwords_on_every_form_share_the_reauth_budget(
    app, factories, set_limits
):
    """Every "type your password again" goes through app/web/reauth.py:
    a wrong one on the 2FA removal page, the password change page and
    /account/confirm draws on one budget, and a right one gives its unit
    back (issue 10: every password check through reauth.py)."""
    from tests.accounts.helpers import (
        Web,
        enable_totp_directly,
        submit_password,
        submit_second_factor,
    )

    set_limits(reauth="3/minute")
    person = factories.account()
    secret, _ = enable_totp_directly(app, person.id)
    web = Web(app)
    assert submit_password(web, person).status_code == 302
    signed_in = submit_second_factor(web, pyotp.TOTP(secret).now())
    assert signed_in.status_code == 302
    right = web.submit("/account/confirm", password=person.password)
    assert right.status_code == 302  # a success costs nothing
    assert web.submit("/account/2fa/disable", password=WRONG).status_code == 401
    new = "a brand new long passphrase 77"
    changed = web.submit(
        "/account/password", current_password=WRONG, password=new, confirm=new
    )
    assert changed.status_code == 401
    assert web.submit("/account/confirm", password=WRONG).status_code == 401
    assert web.submit("/account/confirm", password=person.password).status_code == 429
    assert events(app, person.id, EventTag.REAUTH_FAILURE) == 3
