"""Two-factor authentication with TOTP (RFC 6238): enrolment through the
settings pages, sign-in with a code or a recovery code, replay protection,
recovery codes, turning it off, and what relying parties see (amr/acr)."""

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.events.services import EventTag
from app.extensions import db
from app.models import RecoveryCode
from app.security.opaque_tokens import hash_token
from tests.accounts.helpers import (
    Web,
    account_row,
    authorize,
    code_at,
    delivered_mail,
    enable_totp_directly,
    enrol,
    event_tags,
    events_of,
    is_signed_in,
    make_stale,
    queued_subjects,
    recovery_codes_on,
    secret_on,
    sign_in,
    steady_step,
    submit_password,
    submit_second_factor,
    wrong_code,
)
from tests.flows.helpers import csrf_token
from tests.support.oauth import verify_id_token


@pytest.fixture
def web(app, person):
    """The person's browser, signed in with a password (2FA still off)."""
    browser = Web(app)
    sign_in(browser, person)
    return browser


def _recovery_hashes(app, account_id: str) -> set[str]:
    with app.app_context():
        hashes = set(
            db.session.execute(
                select(RecoveryCode.code_hash).where(
                    RecoveryCode.account_id == account_id
                )
            ).scalars()
        )
        db.session.remove()
    return hashes


def _normalized(code: str) -> str:
    return code.replace("-", "")


# -- enrolment ---------------------------------------------------------------
def test_enrolment_shows_qr_and_secret_then_needs_a_correct_code(
    app, web, person, mail_dir
):
    overview = web.get("/account/2fa")
    assert 'data-enabled="false"' in overview.text

    page = web.get("/account/2fa/setup")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    # The QR code is inline SVG made here: no image fetched from anywhere.
    assert '<div id="totp-qr"' in page.text
    assert "<svg" in page.text
    assert "<img" not in page.text
    secret = secret_on(page.text)
    assert len(secret) == 32
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    # A reload shows the same secret, not one the app has never seen.
    assert secret_on(web.get("/account/2fa/setup").text) == secret
    # Pending, the secret is stored only encrypted and does not count yet.
    pending = account_row(app, person.id)
    assert pending.totp_enabled_at is None
    assert secret.encode() not in pending.totp_secret_encrypted

    step = steady_step()
    refused = web.post(
        "/account/2fa/setup",
        {"csrf_token": csrf_token(page.text), "code": wrong_code(secret, step)},
    )
    assert refused.status_code == 400
    assert 'id="recovery-codes"' not in refused.text
    assert account_row(app, person.id).totp_enabled_at is None

    done = web.post(
        "/account/2fa/setup",
        {"csrf_token": csrf_token(page.text), "code": code_at(secret, step)},
    )
    assert done.status_code == 200, done.text[:300]
    assert done.headers["Cache-Control"] == "no-store"
    codes = recovery_codes_on(done.text)
    assert len(codes) == 10
    assert len(set(codes)) == 10

    enabled = account_row(app, person.id)
    assert enabled.totp_enabled_at is not None
    assert enabled.totp_last_step == step  # the enrolment code is spent
    # Recovery codes are kept as SHA-256 only.
    assert _recovery_hashes(app, person.id) == {
        hash_token(_normalized(c)) for c in codes
    }
    assert EventTag.TOTP_ENABLED in event_tags(app, person.id)
    (event,) = events_of(app, person.id, EventTag.TOTP_ENABLED)
    assert event.ip == web.ip
    assert event.device_id is not None

    # The codes are shown once: the pages after that do not have them.
    assert web.get("/account/2fa/setup").status_code == 302
    overview = web.get("/account/2fa")
    assert 'data-enabled="true"' in overview.text
    assert codes[0] not in overview.text
    assert 'id="codes-left">10<' in overview.text
    home = web.get("/account")
    assert "Two-factor authentication: <strong>on</strong>" in home.text

    subjects = [m["Subject"] for m in delivered_mail(app, mail_dir, person.email)]
    assert "Two-factor authentication is on" in subjects


def test_enrolment_with_an_old_sign_in_needs_the_password(app, web, person):
    make_stale(app, person.id)
    page = web.get("/account/2fa/setup")
    assert 'name="password"' in page.text
    secret = secret_on(page.text)
    step = steady_step()
    without = web.post(
        "/account/2fa/setup",
        {"csrf_token": csrf_token(page.text), "code": code_at(secret, step)},
    )
    assert without.status_code == 401
    assert account_row(app, person.id).totp_enabled_at is None
    _, codes = enrol(web, step, password=person.password)
    assert len(codes) == 10


# -- signing in ------------------------------------------------------------------
def test_sign_in_asks_for_a_code_and_refuses_replayed_wrong_and_future_ones(
    app, web, person
):
    step = steady_step(min_left=5)
    secret, _ = enrol(web, step - 1)

    browser = Web(app)
    first = submit_password(browser, person)
    assert first.status_code == 302
    assert urlsplit(first.location).path == "/login/2fa"
    assert not is_signed_in(browser)  # the password alone is not a sign-in

    # RFC 6238 §5.2: the enrolment code was accepted once; never again.
    replayed = submit_second_factor(browser, code=code_at(secret, step - 1))
    assert replayed.status_code == 401
    assert (
        submit_second_factor(browser, code=wrong_code(secret, step)).status_code == 401
    )
    # Three steps ahead is beyond the one step of clock drift allowed.
    future = submit_second_factor(browser, code=code_at(secret, step + 3))
    assert future.status_code == 401
    assert not is_signed_in(browser)

    accepted = submit_second_factor(browser, code=code_at(secret, step))
    assert accepted.status_code == 302
    assert urlsplit(accepted.location).path == "/account"
    assert is_signed_in(browser)

    # The same code again, from another browser a moment later: refused.
    other = Web(app)
    assert urlsplit(submit_password(other, person).location).path == "/login/2fa"
    again = submit_second_factor(other, code=code_at(secret, step))
    assert again.status_code == 401
    assert not is_signed_in(other)
    # The next step's code works.
    assert (
        submit_second_factor(other, code=code_at(secret, step + 1)).status_code == 302
    )

    # (Four failures: one more would reach the limit of wrong codes per
    # pending account, app.web.throttling.)
    assert len(events_of(app, person.id, EventTag.SECOND_FACTOR_FAILURE)) == 4
    methods = [
        e.details["method"] for e in events_of(app, person.id, EventTag.LOGIN_SUCCESS)
    ]
    assert methods == ["pwd", "pwd+otp+mfa", "pwd+otp+mfa"]


def test_a_recovery_code_works_once(app, factories):
    person = factories.account()
    _, codes = enable_totp_directly(app, person.id)

    browser = Web(app)
    submit_password(browser, person)
    used = submit_second_factor(browser, recovery_code=codes[3].upper())
    assert used.status_code == 302
    assert is_signed_in(browser)
    assert len(events_of(app, person.id, EventTag.RECOVERY_CODE_USED)) == 1

    other = Web(app)
    submit_password(other, person)
    assert submit_second_factor(other, recovery_code=codes[3]).status_code == 401
    assert not is_signed_in(other)
    assert submit_second_factor(other, recovery_code=codes[4]).status_code == 302


def test_id_token_says_two_factors_were_used(app, factories, base_env):
    person = factories.account()
    secret, _ = enable_totp_directly(app, person.id)
    rp = factories.client(first_party=True, name="Notes")
    browser = Web(app)

    tokens = authorize(browser, rp, person, code=code_at(secret, steady_step()))

    claims = verify_id_token(
        tokens["id_token"],
        browser.get("/jwks.json").get_json(),  # the in-process app's JWKS
        base_env["LATCHKEY_ISSUER"],
        rp.client_id,
        nonce=tokens["nonce"],
        access_token=tokens["access_token"],
    )
    assert claims["sub"] == person.id
    assert claims["nonce"] == tokens["nonce"]
    # OIDC Core §2 / RFC 8176: what the person proved, and how strongly.
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])
    assert claims["acr"] == "mfa"


# -- recovery codes --------------------------------------------------------------
def test_new_recovery_codes_need_a_fresh_sign_in_or_the_password(app, web, person):
    _, old_codes = enable_totp_directly(app, person.id)

    fresh = web.submit("/account/2fa", "/account/2fa/recovery-codes")
    assert fresh.status_code == 200, fresh.text[:300]
    assert fresh.headers["Cache-Control"] == "no-store"
    new_codes = recovery_codes_on(fresh.text)
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    assert _recovery_hashes(app, person.id) == {
        hash_token(_normalized(c)) for c in new_codes
    }

    make_stale(app, person.id)
    page = web.get("/account/2fa")
    assert 'name="password"' in page.text
    token = csrf_token(page.text)
    assert (
        web.post("/account/2fa/recovery-codes", {"csrf_token": token}).status_code
        == 401
    )
    assert (
        web.post(
            "/account/2fa/recovery-codes",
            {"csrf_token": token, "password": "not the password"},
        ).status_code
        == 401
    )
    assert _recovery_hashes(app, person.id) == {
        hash_token(_normalized(c)) for c in new_codes
    }
    confirmed = web.post(
        "/account/2fa/recovery-codes",
        {"csrf_token": token, "password": person.password},
    )
    assert confirmed.status_code == 200
    assert len(recovery_codes_on(confirmed.text)) == 10

    assert len(events_of(app, person.id, EventTag.RECOVERY_CODES_REGENERATED)) == 2
    assert (
        queued_subjects(app, person.email).count("New recovery codes for your account")
        == 2
    )

    # An old code no longer signs in.
    browser = Web(app)
    submit_password(browser, person)
    assert submit_second_factor(browser, recovery_code=new_codes[0]).status_code == 401


# -- turning it off ----------------------------------------------------------------
def _disable(web: Web, **fields):
    return web.submit("/account/2fa/disable", **fields)


def test_turning_off_needs_the_password_or_a_recovery_code(app, web, person, mail_dir):
    enable_totp_directly(app, person.id)

    # A fresh session is not enough to remove a factor.
    assert _disable(web).status_code == 401
    assert _disable(web, password="not the password").status_code == 401
    assert _disable(web, recovery_code="aaaa-bbbb-cccc-dddd").status_code == 401
    assert account_row(app, person.id).has_totp

    done = _disable(web, password=person.password)
    assert done.status_code == 302
    assert urlsplit(done.location).path == "/account/2fa"
    assert "is off" in web.get("/account/2fa").text
    off = account_row(app, person.id)
    assert not off.has_totp
    assert off.totp_secret_encrypted is None
    assert _recovery_hashes(app, person.id) == set()
    (event,) = events_of(app, person.id, EventTag.TOTP_DISABLED)
    assert event.details == {"method": "password"}

    # With 2FA off, the password alone signs in again.
    browser = Web(app)
    assert urlsplit(submit_password(browser, person).location).path == "/account"

    _, codes = enable_totp_directly(app, person.id)
    assert _disable(web, recovery_code=codes[0]).status_code == 302
    assert not account_row(app, person.id).has_totp
    last = events_of(app, person.id, EventTag.TOTP_DISABLED)[-1]
    assert last.details == {"method": "recovery_code"}

    subjects = [m["Subject"] for m in delivered_mail(app, mail_dir, person.email)]
    assert subjects.count("Two-factor authentication is off") == 2


# -- the pages' guards ---------------------------------------------------------
def test_posts_without_a_csrf_token_are_refused(app, web, person):
    secret, codes = enable_totp_directly(app, person.id)
    for path, data in [
        ("/account/2fa/recovery-codes", {"password": person.password}),
        ("/account/2fa/disable", {"password": person.password}),
        ("/account/2fa/setup", {"code": code_at(secret, 0)}),
    ]:
        response = web.post(path, data)
        assert response.status_code == 400, path
    assert account_row(app, person.id).has_totp
    assert len(_recovery_hashes(app, person.id)) == len(codes)
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(RecoveryCode)
                .where(RecoveryCode.used_at.is_not(None))
            )
            == 0
        )
        db.session.remove()


def test_two_factor_pages_need_a_sign_in(app):
    browser = Web(app)
    for path in ("/account/2fa", "/account/2fa/setup", "/account/2fa/disable"):
        response = browser.get(path)
        assert response.status_code == 302
        assert urlsplit(response.location).path == "/login"


def test_guessing_the_password_on_these_pages_is_limited(app, web, person):
    """LATCHKEY_RATELIMIT_REAUTH: ten refusals per account in ten minutes."""
    enable_totp_directly(app, person.id)
    page = web.get("/account/2fa/disable")
    token = csrf_token(page.text)
    for n in range(10):
        response = web.post(
            "/account/2fa/disable", {"csrf_token": token, "password": f"guess {n}"}
        )
        assert response.status_code == 401
    blocked = web.post(
        "/account/2fa/disable", {"csrf_token": token, "password": person.password}
    )
    assert blocked.status_code == 429
    assert account_row(app, person.id).has_totp
