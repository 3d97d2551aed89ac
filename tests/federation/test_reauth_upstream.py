"""Re-authentication through the upstream provider for an account without
a password: the request asks the provider to sign the person in again
(prompt=login, max_age=0), and only the same upstream identity, signed in
just now, makes the session fresh."""

from urllib.parse import parse_qs, urlsplit

from tests.accounts.helpers import make_stale
from tests.federation.helpers import (
    SLUG,
    account_by_email,
    assert_failure_page,
    events,
    federate,
    follow,
    sign_in_upstream,
    upstream_redirect,
)
from tests.flows.helpers import TIMEOUT, csrf_token, new_browser, sign_in

REAUTH_OK = "account:reauth:success"
REAUTH_FAILED = "account:reauth:failure"


def _sign_out_all_page(browser, base_url):
    return browser.get(
        base_url + "/account/devices/sign-out-all",
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def test_reauth_asks_the_provider_for_a_fresh_sign_in(
    app, base_url, upstream, up_person, browser
):
    federate(browser, base_url, upstream, up_person)
    account = account_by_email(app, up_person.email)
    make_stale(app, account.id)
    page = _sign_out_all_page(browser, base_url)
    assert 'id="reauth-link"' in page.text
    assert 'name="password"' not in page.text  # there is none to ask for

    start = upstream_redirect(
        browser, base_url, reauth="1", next="/account/devices/sign-out-all"
    )
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    # OIDC Core §3.1.2.1: authenticate again now, whatever the upstream session.
    assert query["prompt"] == ["login"]
    assert query["max_age"] == ["0"]
    callback = sign_in_upstream(browser, upstream, start.headers["Location"], up_person)
    answer = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302, answer.text[:300]
    assert answer.headers["Location"] == "/account/devices/sign-out-all"
    fresh = follow(browser, answer)
    assert 'id="reauth-link"' not in fresh.text
    assert "that is confirmed" in fresh.text
    (event,) = events(app, REAUTH_OK)
    assert event["details"]["provider"] == SLUG


def test_reauth_as_another_upstream_person_is_refused(
    app, base_url, upstream, up_person, browser
):
    federate(browser, base_url, upstream, up_person)
    account = account_by_email(app, up_person.email)
    make_stale(app, account.id)
    someone_else = upstream.factories.account(name="Someone Else")

    start = upstream_redirect(browser, base_url, reauth="1")
    # The upstream asks for a sign-in again; someone else types theirs.
    callback = sign_in_upstream(
        browser, upstream, start.headers["Location"], someone_else
    )
    answer = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert_failure_page(answer, 403, "That did not confirm it is you")
    assert 'id="reauth-link"' in _sign_out_all_page(browser, base_url).text
    assert events(app, REAUTH_OK) == []
    (failure,) = events(app, REAUTH_FAILED)
    assert failure["details"]["reason"] == "other_identity"
    assert failure["account_id"] == account.id


def test_reauth_needs_a_linked_provider_and_a_session(app, base_url, factories):
    person = factories.account()
    browser = new_browser()
    sign_in(browser, base_url, person)
    refused = browser.get(
        f"{base_url}/federation/{SLUG}/start",
        params={"reauth": "1"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert_failure_page(refused, 400, "Not linked to this account")


def test_sso_only_account_deactivates_after_reauth_upstream(
    app, base_url, upstream, up_person, browser
):
    federate(browser, base_url, upstream, up_person)
    account = account_by_email(app, up_person.email)
    make_stale(app, account.id)
    page = browser.get(base_url + "/account/deactivate", timeout=TIMEOUT)
    assert 'id="reauth-link"' in page.text
    refused = browser.post(
        base_url + "/account/deactivate",
        data={"csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert refused.status_code == 401
    assert "Confirm it is you first" in refused.text
    # Nothing was typed, so nothing was guessed: no failure event.
    assert events(app, REAUTH_FAILED) == []
    assert account_by_email(app, up_person.email).status == "active"

    start = upstream_redirect(browser, base_url, reauth="1", next="/account/deactivate")
    callback = sign_in_upstream(browser, upstream, start.headers["Location"], up_person)
    back = follow(
        browser, browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    )
    assert 'id="reauth-link"' not in back.text
    done = browser.post(
        base_url + "/account/deactivate",
        data={"csrf_token": csrf_token(back.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert done.status_code == 200
    assert "Your account is deactivated" in done.text
    assert account_by_email(app, up_person.email).status == "deactivated"
