"""Sign-up, password reset and email change with real mail: the live server
queues, the outbox worker sends through SMTP to an aiosmtpd server on
127.0.0.1, and the test follows the links it receives."""

from datetime import timedelta
from types import SimpleNamespace

import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, AccountLink, OutboxMessage
from app.models.base import utcnow
from tests.flows.helpers import (
    TIMEOUT,
    AuthRequest,
    csrf_token,
    get_code,
    new_browser,
    redeem_code,
    refresh,
    sign_in,
    tokens_for,
    walk_authorize,
)

NEW_PASSWORD = "violet tractor marmalade 42"


def _post_form(browser, url, **fields):
    page = browser.get(url, timeout=TIMEOUT)
    return browser.post(
        url,
        data={"csrf_token": csrf_token(page.text), **fields},
        timeout=TIMEOUT,
        allow_redirects=False,
    )


def _confirm(browser, link):
    """Follow an emailed link: GET shows a button, POST uses the link."""
    return _post_form(browser, link)


def _introspect(base_url, resource_server, token):
    response = requests.post(
        base_url + "/introspect",
        data={"token": token},
        auth=(resource_server.client_id, resource_server.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_signup_verification_link_arrives_and_works_once(
    live_server, mail_worker, smtp_server, app
):
    browser = new_browser()
    email = "new.person@example.com"
    response = _post_form(
        browser,
        live_server.url + "/signup",
        email=email,
        name="New Person",
        password=NEW_PASSWORD,
    )
    assert response.status_code == 200
    assert 'id="sent"' in response.text
    assert mail_worker() >= 1
    link = smtp_server.inbox.link(email, "/verify-email/")
    assert NEW_PASSWORD not in smtp_server.inbox.text(smtp_server.inbox.to(email)[-1])

    with app.app_context():
        assert (
            db.session.execute(
                select(Account.email_verified).where(Account.email == email)
            ).scalar_one()
            is False
        )
    # A GET (a mail scanner) does not use the link up.
    assert browser.get(link, timeout=TIMEOUT).status_code == 200
    assert _confirm(browser, link).status_code == 200
    with app.app_context():
        assert (
            db.session.execute(
                select(Account.email_verified).where(Account.email == email)
            ).scalar_one()
            is True
        )
    assert browser.get(link, timeout=TIMEOUT).status_code == 410


def test_signup_with_a_taken_address_looks_the_same_and_warns_the_owner(
    live_server, mail_worker, smtp_server, factories, app
):
    owner = factories.account()
    browser = new_browser()
    response = _post_form(
        browser,
        live_server.url + "/signup",
        email=owner.email,
        name="Intruder",
        password=NEW_PASSWORD,
    )
    assert response.status_code == 200
    assert 'id="sent"' in response.text
    mail_worker()
    [warning] = smtp_server.inbox.to(owner.email)
    assert "tried to sign up" in warning["Subject"].lower()
    with app.app_context():
        assert (
            db.session.execute(
                select(func.count())
                .select_from(Account)
                .where(Account.email == owner.email)
            ).scalar_one()
            == 1
        )


def test_signup_refuses_a_common_password_with_a_reason(live_server):
    response = _post_form(
        new_browser(),
        live_server.url + "/signup",
        email="weak@example.com",
        password="password123",
    )
    assert response.status_code == 400
    assert "common" in response.text.lower()


def _request_reset(base_url, email):
    return _post_form(new_browser(), base_url + "/password/forgot", email=email)


def test_forgot_password_answers_the_same_for_unknown_addresses(
    live_server, mail_worker, smtp_server
):
    known = _request_reset(live_server.url, "nobody-here@example.com")
    assert known.status_code == 200
    assert 'id="sent"' in known.text
    assert mail_worker() == 0
    assert smtp_server.inbox.messages == []


def test_reset_with_the_checkbox_cuts_off_every_device(
    live_server, mail_worker, smtp_server, factories
):
    account = factories.account()
    rp = factories.client()
    resource_server = factories.client(machine=True, may_introspect=True)
    other_device = new_browser()
    tokens = tokens_for(
        other_device, live_server.url, account, rp, scope="openid offline_access"
    )

    _request_reset(live_server.url, account.email)
    mail_worker()
    link = smtp_server.inbox.link(account.email, "/password/reset/")
    browser = new_browser()
    assert browser.get(link, timeout=TIMEOUT).status_code == 200
    response = _post_form(browser, link, password=NEW_PASSWORD, sign_out_everywhere="y")
    assert response.status_code == 302, response.text

    assert refresh(live_server.url, rp, tokens["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )
    assert _introspect(live_server.url, resource_server, tokens["access_token"]) == {
        "active": False
    }
    account_page = other_device.get(
        live_server.url + "/account", timeout=TIMEOUT, allow_redirects=False
    )
    assert account_page.status_code == 302
    assert "/login" in account_page.headers["Location"]
    # The link worked once; the new password works.
    assert browser.get(link, timeout=TIMEOUT).status_code == 410
    account.password = NEW_PASSWORD
    sign_in(new_browser(), live_server.url, account)
    mail_worker()
    assert any(
        "password was changed" in m["Subject"].lower()
        for m in smtp_server.inbox.to(account.email)
    )


def test_reset_without_the_checkbox_keeps_other_devices(
    live_server, mail_worker, smtp_server, factories
):
    account = factories.account()
    rp = factories.client()
    other_device = new_browser()
    tokens = tokens_for(
        other_device, live_server.url, account, rp, scope="openid offline_access"
    )
    _request_reset(live_server.url, account.email)
    mail_worker()
    link = smtp_server.inbox.link(account.email, "/password/reset/")
    response = _post_form(new_browser(), link, password=NEW_PASSWORD)
    assert response.status_code == 302
    assert refresh(live_server.url, rp, tokens["refresh_token"]).status_code == 200
    assert (
        other_device.get(
            live_server.url + "/account", timeout=TIMEOUT, allow_redirects=False
        ).status_code
        == 200
    )


def test_reset_links_die_when_expired_replaced_or_tampered(
    live_server, mail_worker, smtp_server, factories, app
):
    account = factories.account()
    _request_reset(live_server.url, account.email)
    mail_worker()
    first = smtp_server.inbox.link(account.email, "/password/reset/")
    _request_reset(live_server.url, account.email)
    mail_worker()
    second = smtp_server.inbox.link(account.email, "/password/reset/")
    assert first != second
    browser = new_browser()
    assert browser.get(first, timeout=TIMEOUT).status_code == 410  # replaced
    assert browser.get(second[:-3] + "abc", timeout=TIMEOUT).status_code == 410
    with app.app_context():
        for link in db.session.execute(select(AccountLink)).scalars():
            link.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert browser.get(second, timeout=TIMEOUT).status_code == 410
    response = browser.post(second, data={"password": NEW_PASSWORD}, timeout=TIMEOUT)
    assert response.status_code in (400, 410)  # no form to post: CSRF fails first
    sign_in(new_browser(), live_server.url, account)  # old password still works


def test_reset_post_without_csrf_changes_nothing(
    live_server, mail_worker, smtp_server, factories
):
    account = factories.account()
    _request_reset(live_server.url, account.email)
    mail_worker()
    link = smtp_server.inbox.link(account.email, "/password/reset/")
    response = requests.post(link, data={"password": NEW_PASSWORD}, timeout=TIMEOUT)
    assert response.status_code == 400
    sign_in(new_browser(), live_server.url, account)


def test_email_change_notifies_the_old_address(
    live_server, mail_worker, smtp_server, factories, app
):
    account = factories.account()
    browser = new_browser()
    sign_in(browser, live_server.url, account)
    new_address = "moved@example.com"
    response = _post_form(
        browser,
        live_server.url + "/account/email",
        new_email=new_address,
        current_password=account.password,
    )
    assert response.status_code == 200, response.text
    mail_worker()
    [notice] = [
        m
        for m in smtp_server.inbox.to(account.email)
        if "email address" in m["Subject"]
    ]
    assert new_address in smtp_server.inbox.text(notice)
    link = smtp_server.inbox.link(new_address, "/account/email/confirm/")
    assert _confirm(new_browser(), link).status_code == 200
    with app.app_context():
        assert db.session.get(Account, account.id).email == new_address
    mail_worker()
    assert any(
        "was changed" in m["Subject"] for m in smtp_server.inbox.to(account.email)
    )


def test_email_change_needs_the_password(
    live_server, mail_worker, smtp_server, factories
):
    account = factories.account()
    browser = new_browser()
    sign_in(browser, live_server.url, account)
    response = _post_form(
        browser,
        live_server.url + "/account/email",
        new_email="thief@example.com",
        current_password="guess",
    )
    assert response.status_code == 401
    mail_worker()
    assert smtp_server.inbox.to("thief@example.com") == []
    assert not any(
        "email address" in m["Subject"] for m in smtp_server.inbox.to(account.email)
    )


def test_mail_stays_queued_while_smtp_is_down(
    live_server, mail_worker, smtp_server, factories, app
):
    account = factories.account()
    smtp_server.stop()
    response = _request_reset(live_server.url, account.email)
    assert response.status_code == 200  # the person's action still succeeds
    assert mail_worker() == 1
    with app.app_context():
        row = db.session.execute(
            select(OutboxMessage).where(OutboxMessage.kind == "email")
        ).scalar_one()
        assert row.sent_at is None
        assert row.attempts == 1
        assert row.last_error
    smtp_server.start()
    later = utcnow() + timedelta(hours=2)
    assert mail_worker(now=later) == 1
    assert smtp_server.inbox.link(account.email, "/password/reset/")
    assert mail_worker(now=later) == 0  # delivered once


def test_an_unconfirmed_address_cannot_authorize_a_client_until_confirmed(
    live_server, mail_worker, smtp_server, factories
):
    rp = factories.client()
    browser = new_browser()
    email = "fresh@example.com"
    _post_form(browser, live_server.url + "/signup", email=email, password=NEW_PASSWORD)
    person = SimpleNamespace(email=email, password=NEW_PASSWORD)
    auth = AuthRequest.make(rp)

    walk = walk_authorize(browser, live_server.url, auth.params(), account=person)
    assert walk.response.status_code == 403
    assert "Confirm your email address first" in walk.response.text
    assert "code=" not in walk.response.headers.get("Location", "")

    mail_worker()
    _confirm(browser, smtp_server.inbox.link(email, "/verify-email/"))
    code = get_code(browser, live_server.url, auth, person)
    assert redeem_code(live_server.url, auth, code).status_code == 200
