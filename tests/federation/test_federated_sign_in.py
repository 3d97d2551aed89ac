"""Federated sign-in through an upstream OpenID Connect provider: a second,
real Latchkey process, reached by a browser (a requests.Session) that keeps
cookies for both servers.

Covers the new SSO-only account, the returning person, the existing-email
case (never linked silently), linking and unlinking from the account page,
the ID token a relying party gets afterwards, deactivated accounts and
"sign out of all devices" for an account with no password.
"""

from datetime import timedelta

import pyotp
from limits import parse_many
from sqlalchemy import select, update

from app.extensions import db
from app.models import Account, BrowserSession
from app.models.base import utcnow
from tests.federation.helpers import (
    PROVIDER_NAME,
    SLUG,
    account_by_email,
    assert_failure_page,
    counts,
    events,
    federate,
    follow,
    identities,
)
from tests.flows.helpers import (
    TIMEOUT,
    assert_json_error,
    csrf_token,
    new_browser,
    refresh,
    sign_in,
    tokens_for,
)
from tests.support.oauth import verify_id_token

LOGIN_SUCCESS = "account:login:success"
LOGIN_FAILURE = "account:login:failure"
LINKED = "account:provider:linked"
UNLINKED = "account:provider:unlinked"


def _home(browser, base_url):
    return browser.get(base_url + "/account", allow_redirects=False, timeout=TIMEOUT)


def _sessions_of(app, account_id: str) -> list[list[str]]:
    """The amr of each browser session row of ``account_id``."""
    with app.app_context():
        rows = db.session.execute(
            select(BrowserSession.amr).where(BrowserSession.account_id == account_id)
        ).scalars()
        amrs = [list(amr or []) for amr in rows]
        db.session.remove()
    return amrs


def _unlink(browser, base_url, token: str | None):
    data = {"csrf_token": token} if token is not None else {}
    return browser.post(
        f"{base_url}/federation/{SLUG}/unlink",
        data=data,
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def _set_status(app, account_id: str, status: str) -> None:
    with app.app_context():
        db.session.execute(
            update(Account).where(Account.id == account_id).values(status=status)
        )
        db.session.commit()
        db.session.remove()


# -- new and returning people ---------------------------------------------------
def test_first_sign_in_creates_an_sso_only_account(
    app, base_url, browser, upstream, up_person
):
    before = counts(app)

    trip = federate(browser, base_url, upstream, up_person)

    # The upstream answered with a code, our state and its issuer (RFC 9207).
    assert trip.query["code"]
    assert trip.query["iss"] == upstream.url
    assert trip.response.status_code == 302
    assert trip.response.headers["Location"] == "/account"
    assert browser.cookies.get("lk_session")
    home = follow(browser, trip.response)
    assert home.status_code == 200
    assert f'id="account-email">{up_person.email}<' in home.text
    assert f'data-provider="{SLUG}"' in home.text
    assert 'id="method-password"' not in home.text  # SSO-only: no password

    account = account_by_email(app, up_person.email)
    assert account is not None
    assert account.password_hash is None
    assert account.email_verified is True
    assert account.name == "Grace Hopper"
    assert identities(app, account.id) == [(SLUG, up_person.id)]
    assert counts(app) == (before[0] + 1, before[1] + 1)
    assert _sessions_of(app, account.id) == [["fed"]]
    (success,) = events(app, LOGIN_SUCCESS)
    assert success["account_id"] == account.id
    assert success["details"]["provider"] == SLUG
    assert "fed" in success["details"]["method"]


def test_returning_person_maps_to_the_same_account(app, base_url, upstream, up_person):
    with new_browser() as first:
        federate(first, base_url, upstream, up_person)
    account = account_by_email(app, up_person.email)
    after_first = counts(app)

    # Another browser, another upstream sign-in, with a `next` to go to.
    with new_browser() as second:
        trip = federate(second, base_url, upstream, up_person, next="/account/devices")
        assert trip.response.status_code == 302
        assert trip.response.headers["Location"] == "/account/devices"
        assert second.cookies.get("lk_session")
        assert follow(second, trip.response).status_code == 200

    assert counts(app) == after_first  # no duplicate account or identity
    assert account_by_email(app, up_person.email).id == account.id
    assert identities(app, account.id) == [(SLUG, up_person.id)]
    assert len(_sessions_of(app, account.id)) == 2
    successes = events(app, LOGIN_SUCCESS)
    assert [e["account_id"] for e in successes] == [account.id, account.id]


def test_next_pointing_off_site_is_not_followed(app, base_url, browser, upstream):
    person = upstream.factories.account()
    trip = federate(
        browser, base_url, upstream, person, next="https://evil.example/steal"
    )
    assert trip.response.status_code == 302
    assert trip.response.headers["Location"] == "/account"


# -- an account with the same email exists ------------------------------------------
def test_existing_email_is_never_linked_silently(
    app, factories, base_url, browser, upstream, up_person
):
    owner = factories.account(email=up_person.email)
    before = counts(app)

    trip = federate(browser, base_url, upstream, up_person)

    assert trip.response.status_code == 302
    assert trip.response.headers["Location"] == "/federation/link-existing"
    assert not browser.cookies.get("lk_session")
    assert counts(app) == before
    assert identities(app, owner.id) == []
    page = follow(browser, trip.response)
    assert page.status_code == 200
    assert up_person.email in page.text
    assert PROVIDER_NAME in page.text

    # A wrong password links nothing and signs nobody in.
    wrong = browser.post(
        base_url + "/federation/link-existing",
        data={"csrf_token": csrf_token(page.text), "password": "not the password"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert wrong.status_code == 401
    assert "Wrong password." in wrong.text
    assert not browser.cookies.get("lk_session")
    assert counts(app) == before
    assert identities(app, owner.id) == []
    assert events(app, LOGIN_SUCCESS) == []
    assert events(app, LINKED) == []

    # The right one links the identity and signs the owner in.
    right = browser.post(
        base_url + "/federation/link-existing",
        data={"csrf_token": csrf_token(wrong.text), "password": owner.password},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert right.status_code == 302, right.text
    assert right.headers["Location"] == "/account"
    assert browser.cookies.get("lk_session")
    home = follow(browser, right)
    assert f'id="account-email">{owner.email}<' in home.text
    assert 'id="method-password"' in home.text
    assert f'data-provider="{SLUG}"' in home.text
    assert identities(app, owner.id) == [(SLUG, up_person.id)]
    assert counts(app) == (before[0], before[1] + 1)  # linked, nothing created
    assert sorted(_sessions_of(app, owner.id)[0]) == ["fed", "pwd"]
    (linked,) = events(app, LINKED)
    assert linked["account_id"] == owner.id
    assert linked["details"]["provider"] == SLUG
    (success,) = events(app, LOGIN_SUCCESS)
    assert success["details"]["provider"] == SLUG

    # The pending link was used up: the page does not come back.
    again = browser.get(
        base_url + "/federation/link-existing", allow_redirects=False, timeout=TIMEOUT
    )
    assert again.status_code == 302
    assert again.headers["Location"].startswith("/login")

    # From now on the upstream identity signs straight in to the same account.
    with new_browser() as other:
        trip = federate(other, base_url, upstream, up_person)
        assert trip.response.headers["Location"] == "/account"
    assert counts(app) == (before[0], before[1] + 1)


def test_link_existing_without_csrf_is_refused(
    app, factories, base_url, browser, upstream, up_person
):
    owner = factories.account(email=up_person.email)
    trip = federate(browser, base_url, upstream, up_person)
    follow(browser, trip.response)
    response = browser.post(
        base_url + "/federation/link-existing",
        data={"password": owner.password},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text
    assert not browser.cookies.get("lk_session")
    assert identities(app, owner.id) == []


# -- linking and unlinking from the account page ------------------------------------
def test_link_from_the_account_page(
    app, factories, base_url, browser, upstream, up_person
):
    owner = factories.account()
    sign_in(browser, base_url, owner)
    home = _home(browser, base_url)
    assert f"/federation/{SLUG}/start?link=1" in home.text
    before = counts(app)

    trip = federate(browser, base_url, upstream, up_person, link="1")

    assert trip.response.status_code == 302
    assert trip.response.headers["Location"] == "/account"
    assert identities(app, owner.id) == [(SLUG, up_person.id)]
    assert counts(app) == (before[0], before[1] + 1)
    # Linking is not a new sign-in: the session is the password one.
    assert _sessions_of(app, owner.id) == [["pwd"]]
    (linked,) = events(app, LINKED)
    assert linked["account_id"] == owner.id
    assert linked["details"]["provider"] == SLUG
    home = follow(browser, trip.response)
    assert f'data-provider="{SLUG}"' in home.text
    assert f"/federation/{SLUG}/start?link=1" not in home.text

    # Someone else cannot take the same upstream identity.
    intruder = factories.account()
    with new_browser() as other:
        sign_in(other, base_url, intruder)
        taken = federate(other, base_url, upstream, up_person, link="1")
    assert_failure_page(taken.response, 409, "Already linked elsewhere")
    assert identities(app, intruder.id) == []
    assert identities(app, owner.id) == [(SLUG, up_person.id)]
    assert len(events(app, LINKED)) == 1


def test_link_flag_without_a_session_signs_in_instead(
    app, base_url, browser, upstream, up_person
):
    trip = federate(browser, base_url, upstream, up_person, link="1")
    assert trip.response.status_code == 302
    account = account_by_email(app, up_person.email)
    assert identities(app, account.id) == [(SLUG, up_person.id)]
    assert events(app, LINKED) == []


def test_the_only_sign_in_method_cannot_be_unlinked(
    app, base_url, browser, upstream, up_person
):
    trip = federate(browser, base_url, upstream, up_person)
    home = follow(browser, trip.response)
    account = account_by_email(app, up_person.email)

    response = _unlink(browser, base_url, csrf_token(home.text))

    assert_failure_page(response, 409, "only way you can sign in")
    assert identities(app, account.id) == [(SLUG, up_person.id)]
    assert events(app, UNLINKED) == []
    assert _home(browser, base_url).status_code == 200  # still signed in


def test_unlink_needs_csrf_and_a_password_account_can_unlink(
    app, factories, base_url, browser, upstream, up_person
):
    owner = factories.account()
    sign_in(browser, base_url, owner)
    federate(browser, base_url, upstream, up_person, link="1")
    assert identities(app, owner.id) == [(SLUG, up_person.id)]

    no_csrf = _unlink(browser, base_url, None)
    assert no_csrf.status_code == 400
    assert "Traceback" not in no_csrf.text
    forged = _unlink(browser, base_url, "forged-token")
    assert forged.status_code == 400
    assert identities(app, owner.id) == [(SLUG, up_person.id)]
    assert events(app, UNLINKED) == []

    # The account page links to a page that asks first; asking changes nothing.
    home = _home(browser, base_url)
    assert f'href="/federation/{SLUG}/unlink"' in home.text
    asked = browser.get(f"{base_url}/federation/{SLUG}/unlink", timeout=TIMEOUT)
    assert asked.status_code == 200
    assert f"Unlink {PROVIDER_NAME}?" in asked.text
    assert identities(app, owner.id) == [(SLUG, up_person.id)]
    response = _unlink(browser, base_url, csrf_token(asked.text))
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    assert identities(app, owner.id) == []
    (unlinked,) = events(app, UNLINKED)
    assert unlinked["account_id"] == owner.id
    assert unlinked["details"]["provider"] == SLUG
    home = follow(browser, response)
    assert f"{PROVIDER_NAME} is unlinked." in home.text
    assert f'data-provider="{SLUG}"' not in home.text
    assert f"/federation/{SLUG}/start?link=1" in home.text


def test_unlink_when_signed_out_asks_to_sign_in(app, base_url, browser):
    page = browser.get(base_url + "/login", timeout=TIMEOUT)
    response = _unlink(browser, base_url, csrf_token(page.text))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


# -- what relying parties see ------------------------------------------------------
def test_relying_party_id_token_says_fed(
    app, factories, base_url, browser, jwks, upstream, up_person
):
    federate(browser, base_url, upstream, up_person)
    account = account_by_email(app, up_person.email)
    rp = factories.client()

    tokens = tokens_for(browser, base_url, None, rp)

    claims = verify_id_token(
        tokens["id_token"],
        jwks,
        base_url,
        rp.client_id,
        access_token=tokens["access_token"],
        require=["amr", "nonce"],
    )
    assert claims["sub"] == account.id  # our subject, not the upstream's
    assert claims["sub"] != up_person.id
    assert "fed" in claims["amr"]
    assert "pwd" not in claims["amr"]
    assert claims["email"] == up_person.email
    (success,) = events(app, LOGIN_SUCCESS)
    assert success["account_id"] == account.id
    assert success["details"]["provider"] == SLUG


# -- cutting off -------------------------------------------------------------------
def test_deactivated_account_cannot_sign_in_through_the_provider(
    app, base_url, upstream, up_person
):
    with new_browser() as first:
        federate(first, base_url, upstream, up_person)
        account = account_by_email(app, up_person.email)
        _set_status(app, account.id, "deactivated")
        # The session it already had is dead as well.
        assert _home(first, base_url).status_code == 302
    before = counts(app)

    with new_browser() as browser:
        trip = federate(browser, base_url, upstream, up_person)
        assert_failure_page(trip.response, 403, "deactivated")
        assert not browser.cookies.get("lk_session")
        assert _home(browser, base_url).status_code == 302

    assert counts(app) == before
    (failure,) = events(app, LOGIN_FAILURE)
    assert failure["account_id"] == account.id
    assert failure["details"]["provider"] == SLUG
    assert len(events(app, LOGIN_SUCCESS)) == 1  # only the first sign-in
    assert len(_sessions_of(app, account.id)) == 1


def test_sign_out_everywhere_cuts_off_an_sso_only_account(
    app, factories, base_url, browser, upstream, up_person
):
    federate(browser, base_url, upstream, up_person)
    account = account_by_email(app, up_person.email)
    rp = factories.client()
    tokens = tokens_for(browser, base_url, None, rp)
    rotated = refresh(base_url, rp, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    refresh_token = rotated.json()["refresh_token"]

    devices = browser.get(base_url + "/account/devices", timeout=TIMEOUT)
    assert devices.status_code == 200
    assert 'id="sign-out-all"' in devices.text
    assert 'name="password"' not in devices.text  # fresh session, no password
    response = browser.post(
        base_url + "/account/devices/sign-out-all",
        data={"csrf_token": csrf_token(devices.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    assert response.status_code == 302, response.text
    assert response.headers["Location"].startswith("/login")
    assert not browser.cookies.get("lk_session")
    assert_json_error(refresh(base_url, rp, refresh_token), 400, "invalid_grant")
    assert _home(browser, base_url).status_code == 302
    (cut,) = events(app, "account:devices:signed_out_all")
    assert cut["account_id"] == account.id
    # Signing in through the provider again works and starts afresh.
    trip = federate(browser, base_url, upstream, up_person)
    assert trip.response.headers["Location"] == "/account"
    assert _home(browser, base_url).status_code == 200


# -- the link page: a second factor, and guessing ----------------------------------
def _enable_totp(app, account_id: str) -> str:
    """2FA on for ``account_id``, as if enrolled long ago; returns the secret."""
    with app.app_context():
        totp = app.extensions["latchkey"].totp
        account = db.session.get(Account, account_id)
        secret = totp.new_secret()
        account.totp_secret_encrypted = totp.encrypt(secret)
        account.totp_enabled_at = utcnow() - timedelta(days=30)
        db.session.commit()
        db.session.remove()
    return secret


def test_existing_email_with_two_factor_links_after_the_second_factor(
    app, factories, base_url, browser, upstream, up_person
):
    owner = factories.account(email=up_person.email)
    secret = _enable_totp(app, owner.id)
    trip = federate(browser, base_url, upstream, up_person)
    page = follow(browser, trip.response)

    second = browser.post(
        base_url + "/federation/link-existing",
        data={"csrf_token": csrf_token(page.text), "password": owner.password},
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    # The password alone neither signs in nor links: the second factor first.
    assert second.status_code == 302, second.text
    assert second.headers["Location"] == "/login/2fa"
    assert not browser.cookies.get("lk_session")
    assert identities(app, owner.id) == []
    step = follow(browser, second)
    done = browser.post(
        base_url + "/login/2fa",
        data={"csrf_token": csrf_token(step.text), "code": pyotp.TOTP(secret).now()},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert done.status_code == 302, done.text
    assert browser.cookies.get("lk_session")
    home = follow(browser, done)
    while home.is_redirect:
        home = follow(browser, home)
    assert f'id="account-email">{owner.email}<' in home.text
    assert identities(app, owner.id) == [(SLUG, up_person.id)]
    (linked,) = events(app, LINKED)
    assert linked["account_id"] == owner.id


def test_wrong_passwords_on_the_link_page_count_like_sign_in_failures(
    app, factories, base_url, browser, upstream, up_person
):
    owner = factories.account(email=up_person.email)
    trip = federate(browser, base_url, upstream, up_person)
    page = follow(browser, trip.response)
    limit = parse_many(app.config["LATCHKEY"].ratelimit_limits["login_account"])[0]

    def attempt(password):
        return browser.post(
            base_url + "/federation/link-existing",
            data={"csrf_token": csrf_token(page.text), "password": password},
            allow_redirects=False,
            timeout=TIMEOUT,
        )

    for _ in range(limit.amount):
        assert attempt("not the password").status_code == 401
    # Each guess is on the owner's record, as on the login page ...
    failures = events(app, LOGIN_FAILURE)
    assert len(failures) == limit.amount
    assert {e["account_id"] for e in failures} == {owner.id}
    assert failures[0]["details"]["provider"] == SLUG
    # ... and the guesses stop, even the right one, as on the login page.
    refused = attempt(owner.password)
    assert refused.status_code == 429
    assert "Traceback" not in refused.text
    assert identities(app, owner.id) == []
    assert not browser.cookies.get("lk_session")


def test_a_returning_person_with_two_factor_gives_a_code_after_the_provider(
    app, base_url, browser, upstream, up_person
):
    """The upstream sign-in is the first factor only: the provider is not
    trusted to vouch for MFA (trust_mfa is off), so our TOTP is asked."""
    with new_browser() as first:
        federate(first, base_url, upstream, up_person)
    account = account_by_email(app, up_person.email)
    secret = _enable_totp(app, account.id)

    trip = federate(browser, base_url, upstream, up_person)
    assert trip.response.status_code == 302
    assert trip.response.headers["Location"] == "/login/2fa"
    assert not browser.cookies.get("lk_session")
    step = follow(browser, trip.response)
    done = browser.post(
        base_url + "/login/2fa",
        data={"csrf_token": csrf_token(step.text), "code": pyotp.TOTP(secret).now()},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert done.status_code == 302, done.text
    with app.app_context():
        session = (
            db.session.execute(
                select(BrowserSession)
                .where(BrowserSession.account_id == account.id)
                .order_by(BrowserSession.created_at.desc())
            )
            .scalars()
            .first()
        )
        assert set(session.amr) >= {"fed", "otp", "mfa"}
        assert session.acr == "mfa"
        db.session.remove()
