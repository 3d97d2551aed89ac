"""The account console in a real browser: every destructive action asks
first, every action says what it did, signed-out devices leave the list,
"Remove access" cuts one app off at once and no other, and an SSO-only
person whose sign-in is old re-proves it upstream to sign out everywhere."""

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Account, BrowserSession, SecurityEvent
from tests.browser.console_helpers import authorize, flash_text, refresh
from tests.support.chromium import new_page, sign_in, submit_sign_in

SCOPE = "openid profile email offline_access"


def _age_sessions(app, email: str, minutes: int) -> None:
    """Make the person's sign-ins older than LATCHKEY_REAUTH_MAX_AGE."""
    with app.app_context():
        account_id = db.session.execute(
            select(Account.id).where(Account.email == email)
        ).scalar_one()
        for row in db.session.execute(
            select(BrowserSession).where(BrowserSession.account_id == account_id)
        ).scalars():
            row.auth_time -= timedelta(minutes=minutes)
        db.session.commit()
        db.session.remove()


def _tags(app, email: str) -> list[str]:
    with app.app_context():
        rows = db.session.execute(
            select(SecurityEvent.tag)
            .join(Account, Account.id == SecurityEvent.account_id)
            .where(Account.email == email)
            .order_by(SecurityEvent.id)
        ).scalars()
        tags = list(rows)
        db.session.remove()
    return tags


def test_remove_access_cuts_one_app_off_and_not_another(
    live_server, factories, page, relying_party
):
    person = factories.account()
    mail = factories.client(
        redirect_uri=relying_party.url + "/mail", name="Mail reader"
    )
    photos = factories.client(
        redirect_uri=relying_party.url + "/photos", name="Photo album"
    )
    sign_in(page, live_server.url, person)
    mail_tokens = authorize(page, live_server.url, mail, SCOPE)
    photo_tokens = authorize(page, live_server.url, photos, SCOPE)

    page.goto(live_server.url + "/account/apps")
    cards = page.locator("#apps .app")
    assert sorted(cards.locator(".app-name").all_inner_texts()) == [
        "Mail reader",
        "Photo album",
    ]
    card = page.locator(f'.app[data-client-id="{mail.client_id}"]')
    assert "See your email address" in card.inner_text()
    assert "Stays signed in" in card.locator(".app-stays").inner_text()
    assert card.locator(".app-devices").inner_text().startswith("On: ")

    # Remove access asks first; Cancel changes nothing.
    card.locator(".remove-access").click()
    assert "Remove Mail reader's access?" in page.inner_text("h1")
    page.click("#cancel")
    assert page.url == live_server.url + "/account/apps"
    refreshed = refresh(live_server.url, mail, mail_tokens["refresh_token"])
    assert refreshed.ok  # used once: a second use would be reuse (grace 0)
    mail_tokens = refreshed.json()

    page.locator(f'.app[data-client-id="{mail.client_id}"] .remove-access').click()
    page.click("#confirm")
    page.wait_for_url(live_server.url + "/account/apps")
    assert "Mail reader can no longer use your account" in flash_text(page)
    assert page.locator("#messages .flash-success").count() == 1
    assert page.locator(".app-name").all_inner_texts() == ["Photo album"]

    # At once: the removed app's refresh token fails, the other app's works.
    cut = refresh(live_server.url, mail, mail_tokens["refresh_token"])
    assert cut.status_code == 400
    assert cut.json()["error"] == "invalid_grant"
    assert refresh(live_server.url, photos, photo_tokens["refresh_token"]).ok

    # The consent went with it: the next request asks again.
    page.goto(live_server.url + "/account/security")
    history = page.inner_text("#security-events")
    assert "App access removed: Mail reader" in history
    assert "App given access: Photo album" in history  # named, not its client_id


def test_device_sign_out_asks_first_says_so_and_leaves_the_list(
    live_server, factories, chromium
):
    person = factories.account()
    with new_page(chromium) as here, new_page(chromium) as other:
        sign_in(here, live_server.url, person)
        sign_in(other, live_server.url, person)
        here.goto(live_server.url + "/account/devices")
        assert here.locator("#devices .device").count() == 2
        assert here.locator("#this-device").count() == 1
        other_card = here.locator(".device:not([data-this-device])")
        other_id = other_card.get_attribute("data-device-id")
        assert "last seen just now" in other_card.inner_text()

        # Rename says what it did.
        other_card.locator("input[name=name]").fill("Work laptop")
        other_card.locator("button", has_text="Rename").click()
        assert "Renamed to “Work laptop”" in flash_text(here)

        here.locator(f'[data-device-id="{other_id}"] .sign-out-device').click()
        assert here.inner_text("h1") == "Sign out “Work laptop”?"
        here.click("#confirm")
        here.wait_for_url(live_server.url + "/account/devices")
        assert "Work laptop is signed out" in flash_text(here)
        assert here.locator(f'[data-device-id="{other_id}"]').count() == 0
        assert here.locator("#devices .device").count() == 1

        # That browser is signed out; signing in again there makes one new
        # device, not a list of dead duplicates.
        other.goto(live_server.url + "/account")
        assert other.url.startswith(live_server.url + "/login")
        sign_in(other, live_server.url, person)
        here.goto(live_server.url + "/account/devices")
        assert here.locator("#devices .device").count() == 2
        # Signing out in the browser (the nav's Sign out) removes it too.
        other.click("#nav-sign-out")
        other.click("#confirm-sign-out")
        other.wait_for_url(live_server.url + "/login")
        assert "You are signed out." in flash_text(other)
        here.reload()
        assert here.locator("#devices .device").count() == 1
        history = here.goto(live_server.url + "/account/security")
        assert history.ok
        assert "Device signed out" in here.inner_text("#security-events")


def test_destructive_actions_ask_first(app, live_server, factories, page):
    person = factories.account()
    sign_in(page, live_server.url, person)
    for start, link, heading in (
        ("/account/devices", "#sign-out-all", "Sign out of all devices?"),
        ("/account/devices", ".sign-out-device", "Sign out this device?"),
        ("/account", "text=Deactivate your account", "Deactivate your account?"),
        ("/account", "text=Delete your account", "Delete your account for good?"),
    ):
        page.goto(live_server.url + start)
        page.click(link)
        assert page.inner_text("h1") == heading
        page.click("#cancel")
    # Nothing happened: still signed in, no cut-off recorded.
    page.goto(live_server.url + "/account")
    assert page.inner_text("#account-email") == person.email
    assert not {
        "account:devices:signed_out_all",
        "account:device:signed_out",
        "account:deactivated",
        "account:deleted",
    } & set(_tags(app, person.email))


def test_each_action_says_what_it_did(live_server, factories, page):
    person = factories.account(name="Ada")
    sign_in(page, live_server.url, person)

    page.fill("#name", "Ada Lovelace")
    page.click("#save-name")
    assert "Your name is saved." in flash_text(page)
    assert page.locator("#messages .flash-success").count() == 1
    assert "(Ada Lovelace)" in page.inner_text("main")

    page.goto(live_server.url + "/account/password")
    page.fill("#current_password", person.password)
    page.fill("#password", "a brand new passphrase 2718")
    page.click("#save-password")
    page.wait_for_url(live_server.url + "/account?password=changed")
    assert "Your password is changed." in flash_text(page)

    page.goto(live_server.url + "/account/devices/sign-out-all")
    page.click("#confirm")
    page.wait_for_url(live_server.url + "/login?signed_out=all")
    assert "You are signed out of all devices" in flash_text(page)
    assert page.locator("#messages .flash-success").count() == 1


def test_sso_only_person_reauthenticates_upstream_to_sign_out_everywhere(
    app, live_server, upstream, factories, page, relying_party
):
    person = upstream.factories.account(name="Mary Jackson")
    page.goto(live_server.url + "/login")
    page.click("#provider-upstream")
    page.wait_for_url(upstream.url + "/login?*")
    submit_sign_in(page, person)
    page.wait_for_url(live_server.url + "/account")
    rp = factories.client(redirect_uri=relying_party.url + "/cb", name="Notes")
    tokens = authorize(page, live_server.url, rp, SCOPE)

    _age_sessions(app, person.email, minutes=10)
    page.goto(live_server.url + "/account/devices")
    page.click("#sign-out-all")
    # No password to type: the page offers to confirm upstream instead.
    assert page.locator("input[name=password]").count() == 0
    assert page.locator("#confirm").is_disabled()
    page.click("#reauth-link")
    page.click("#reauth-upstream")
    # prompt=login: the upstream asks for the password again although its
    # own session is alive.
    page.wait_for_url(upstream.url + "/login?*")
    submit_sign_in(page, person)
    page.wait_for_url(live_server.url + "/account/devices/sign-out-all")
    assert "that is confirmed" in flash_text(page)
    page.click("#confirm")
    page.wait_for_url(live_server.url + "/login?signed_out=all")
    assert "You are signed out of all devices" in flash_text(page)

    cut = refresh(live_server.url, rp, tokens["refresh_token"])
    assert cut.status_code == 400
    assert cut.json()["error"] == "invalid_grant"
    tags = _tags(app, person.email)
    assert "account:reauth:success" in tags
    assert "account:devices:signed_out_all" in tags


def test_pages_use_our_own_stylesheet_under_a_strict_policy(
    live_server, factories, page
):
    """One stylesheet from /static, allowed by a CSP with no inline styles
    and nothing from other origins; the browser reports no violation."""
    refused = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(live_server.url + "/login")
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    sign_in(page, live_server.url, factories.account())
    for path in ("/account", "/account/devices", "/account/apps"):
        page.goto(live_server.url + path)
        header = page.evaluate(
            "getComputedStyle(document.querySelector('.site-header')).backgroundColor"
        )
        assert header == "rgb(246, 248, 250)"  # --panel: the stylesheet applied
        # The skip link is the first thing a keyboard reaches.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
    assert refused == []
    assert all(url.startswith(live_server.url) for url in requested), requested
    stylesheet = [u for u in requested if u.endswith(".css")]
    assert stylesheet == [live_server.url + "/static/latchkey.css"] * len(stylesheet)
