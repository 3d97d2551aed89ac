"""A person signs in through the upstream SSO provider in a real browser:
the downstream's login page, the upstream's login page, and back, signed in."""

from urllib.parse import urlsplit

from sqlalchemy import select

from app.extensions import db
from app.models import Account, FederatedIdentity
from tests.support.chromium import submit_sign_in


def test_continue_with_upstream_sso(live_server, upstream, app, page):
    person = upstream.factories.account(name="Katherine Johnson")

    page.goto(live_server.url + "/login")
    button = page.locator("#provider-upstream")
    assert button.inner_text() == "Continue with Upstream SSO"
    button.click()

    # The upstream's own login page, on its own origin.
    page.wait_for_url(upstream.url + "/login?*")
    submit_sign_in(page, person)

    # First-party at the upstream: no consent page, straight back, signed in.
    page.wait_for_url(live_server.url + "/account")
    assert page.inner_text("#account-email") == person.email
    assert "Upstream SSO" in page.inner_text("#sign-in-methods")
    cookies = {c["name"] for c in page.context.cookies(live_server.url)}
    assert {"lk_session", "up_session"} <= cookies

    with app.app_context():
        account = db.session.execute(
            select(Account).where(Account.email == person.email)
        ).scalar_one()
        links = db.session.execute(
            select(FederatedIdentity.provider, FederatedIdentity.subject).where(
                FederatedIdentity.account_id == account.id
            )
        ).all()
        assert account.password_hash is None
        assert [tuple(link) for link in links] == [("upstream", person.id)]
        db.session.remove()

    # A second visit goes through without typing: the upstream remembers.
    page.context.clear_cookies(name="lk_session")
    page.goto(live_server.url + "/login")
    page.click("#provider-upstream")
    page.wait_for_url(live_server.url + "/account")
    assert urlsplit(page.url).path == "/account"
    assert page.inner_text("#account-email") == person.email
