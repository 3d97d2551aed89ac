"""Changing the password (and the email address) from the account page:
the current password is required, wrong ones are recorded and limited like
every other re-authentication, and the sign-out checkbox does what it says."""

from sqlalchemy import select

from app.extensions import db
from app.models import SecurityEvent
from tests.flows.helpers import (
    TIMEOUT,
    csrf_token,
    new_browser,
    refresh,
    sign_in,
    tokens_for,
)

NEW_PASSWORD = "cobalt meadow kettle 51"
REAUTH_FAILURE = "account:reauth:failure"


def _post(browser, url, **fields):
    page = browser.get(url, timeout=TIMEOUT)
    return browser.post(
        url,
        data={"csrf_token": csrf_token(page.text), **fields},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def _change(browser, base_url, current, new=NEW_PASSWORD, sign_out=True):
    fields = {"current_password": current, "password": new}
    if sign_out:
        fields["sign_out_everywhere"] = "y"
    return _post(browser, base_url + "/account/password", **fields)


def _signed_in(browser, base_url) -> bool:
    page = browser.get(base_url + "/account", allow_redirects=False, timeout=TIMEOUT)
    return page.status_code == 200


def _reauth_failures(app, account_id) -> list[dict]:
    with app.app_context():
        rows = db.session.execute(
            select(SecurityEvent.details).where(
                SecurityEvent.account_id == account_id,
                SecurityEvent.tag == REAUTH_FAILURE,
            )
        ).scalars()
        details = list(rows)
        db.session.remove()
    return details


def test_change_with_the_box_ticked_signs_out_the_other_devices(live_server, factories):
    person = factories.account()
    rp = factories.client()
    other = new_browser()
    tokens = tokens_for(
        other, live_server.url, person, rp, scope="openid offline_access"
    )
    here = new_browser()
    sign_in(here, live_server.url, person)

    response = _change(here, live_server.url, person.password)

    assert response.status_code == 302, response.text
    assert refresh(live_server.url, rp, tokens["refresh_token"]).status_code == 400
    assert not _signed_in(other, live_server.url)
    assert _signed_in(here, live_server.url)  # this browser signed in anew
    person.password = NEW_PASSWORD
    sign_in(new_browser(), live_server.url, person)


def test_change_without_the_box_keeps_the_other_devices(live_server, factories):
    person = factories.account()
    rp = factories.client()
    other = new_browser()
    tokens = tokens_for(
        other, live_server.url, person, rp, scope="openid offline_access"
    )
    here = new_browser()
    sign_in(here, live_server.url, person)

    response = _change(here, live_server.url, person.password, sign_out=False)

    assert response.status_code == 302, response.text
    assert refresh(live_server.url, rp, tokens["refresh_token"]).status_code == 200
    assert _signed_in(other, live_server.url)


def test_a_wrong_current_password_changes_nothing_and_is_recorded(
    app, live_server, factories
):
    person = factories.account()
    browser = new_browser()
    sign_in(browser, live_server.url, person)

    response = _change(browser, live_server.url, "not my password")

    assert response.status_code == 401
    assert "current password is not right" in response.text
    assert [d["action"] for d in _reauth_failures(app, person.id)] == [
        "change_password"
    ]
    sign_in(new_browser(), live_server.url, person)  # the old password works


def test_a_weak_new_password_is_refused_with_a_reason(live_server, factories):
    person = factories.account()
    browser = new_browser()
    sign_in(browser, live_server.url, person)
    response = _change(browser, live_server.url, person.password, new="password123")
    assert response.status_code == 400
    assert "common" in response.text.lower()
    sign_in(new_browser(), live_server.url, person)


def test_change_without_csrf_is_refused(live_server, factories):
    person = factories.account()
    browser = new_browser()
    sign_in(browser, live_server.url, person)
    response = browser.post(
        live_server.url + "/account/password",
        data={"current_password": person.password, "password": NEW_PASSWORD},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    sign_in(new_browser(), live_server.url, person)


def test_guessing_the_password_through_these_forms_is_limited(
    app, live_server, factories
):
    """A stolen session is no password oracle: password change and email
    change share the re-authentication limit (10 wrong per 10 minutes)."""
    person = factories.account()
    browser = new_browser()
    sign_in(browser, live_server.url, person)
    answers = [
        _change(browser, live_server.url, f"guess {n}").status_code for n in range(5)
    ]
    answers += [
        _post(
            browser,
            live_server.url + "/account/email",
            new_email="thief@example.com",
            current_password=f"guess {n}",
        ).status_code
        for n in range(6)
    ]
    assert answers == [401] * 10 + [429]
    actions = [d["action"] for d in _reauth_failures(app, person.id)]
    assert actions == ["change_password"] * 5 + ["change_email"] * 5
    # Even the right password waits out the window.
    assert _change(browser, live_server.url, person.password).status_code == 429
