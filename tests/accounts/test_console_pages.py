"""The account console's pages against the in-process app: apps with
access and Remove access, re-authentication by TOTP or recovery code,
deleting one's own account, the display name, plain words for refused
forms, connected devices that are only the live ones, and a forced reset
that goes back to the app the person was signing in to."""

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Account,
    AccountStatus,
    Consent,
    Grant,
    OutboxMessage,
)
from app.oauth.consent import remember_consent
from tests.accounts.helpers import (
    Web,
    account_row,
    authorize,
    code_at,
    enable_totp_directly,
    event_tags,
    events_of,
    make_stale,
    refresh,
    sign_in,
    steady_step,
    submit_password,
    wrong_code,
)
from tests.flows.helpers import csrf_token
from tests.support.oauth import pkce_pair


@pytest.fixture
def person(factories):
    return factories.account()


@pytest.fixture
def web(app, person):
    web = Web(app)
    sign_in(web, person)
    return web


def _live_grants(app, account_id: str, client_id: str) -> int:
    with app.app_context():
        count = len(
            db.session.execute(
                select(Grant.id).where(
                    Grant.account_id == account_id,
                    Grant.client_id == client_id,
                    Grant.revoked_at.is_(None),
                )
            ).all()
        )
        db.session.remove()
    return count


# -- apps with access ----------------------------------------------------------
def test_remove_access_revokes_consent_grants_and_tells_the_app(
    app, factories, person, web
):
    mail = factories.client(
        first_party=True,
        name="Mail reader",
        backchannel_logout_uri="http://127.0.0.1:9/bcl",
    )
    photos = factories.client(first_party=True, name="Photo album")
    mail_tokens = authorize(web, mail, person)
    photo_tokens = authorize(web, photos, person)
    with app.app_context():
        remember_consent(person.id, mail.client_id, "openid email")
        db.session.commit()
        db.session.remove()

    listing = web.get("/account/apps")
    assert listing.status_code == 200
    assert "Mail reader" in listing.text
    assert "Photo album" in listing.text
    asked = web.get(f"/account/apps/{mail.client_id}/remove")
    assert asked.status_code == 200
    assert "Remove Mail reader's access?" in asked.text
    # Asking changed nothing.
    assert _live_grants(app, person.id, mail.client_id) == 1

    done = web.post(
        f"/account/apps/{mail.client_id}/remove",
        {"csrf_token": csrf_token(asked.text)},
    )
    assert done.status_code == 302
    assert done.location == "/account/apps"
    after = web.get("/account/apps").text
    assert "Mail reader can no longer use your account" in after
    assert 'data-client-id="' + mail.client_id not in after
    assert 'data-client-id="' + photos.client_id in after

    assert _live_grants(app, person.id, mail.client_id) == 0
    assert refresh(web, mail, mail_tokens["refresh_token"]).status_code == 400
    assert refresh(web, photos, photo_tokens["refresh_token"]).status_code == 200
    with app.app_context():
        assert (
            db.session.execute(
                select(Consent).where(Consent.account_id == person.id)
            ).scalar_one_or_none()
            is None
        )
        fanouts = [
            row.payload
            for row in db.session.execute(
                select(OutboxMessage).where(OutboxMessage.kind == "backchannel_fanout")
            ).scalars()
        ]
        db.session.remove()
    # Back-channel logout for the revoked grant, in the same transaction.
    assert [p["cause"] for p in fanouts] == ["grant"]
    (event,) = events_of(app, person.id, "oauth:consent:revoked")
    assert event.details["client"] == "Mail reader"
    assert event.details["grants"] == 1


def test_remove_access_refuses_what_is_not_there(app, factories, person, web):
    stranger = factories.account()
    theirs = factories.client(first_party=True, name="Their app")
    other = Web(app)
    sign_in(other, stranger)
    authorize(other, theirs, stranger)

    for client_id in ("no-such-app", theirs.client_id, "x" * 500):
        asked = web.get(f"/account/apps/{client_id}/remove")
        assert asked.status_code == 302
        assert asked.location == "/account/apps"
        posted = web.post(
            f"/account/apps/{client_id}/remove",
            {"csrf_token": csrf_token(web.get("/account").text)},
        )
        assert posted.status_code == 302
    assert "has no access to your account" in web.get("/account/apps").text
    # Another person's app kept its access.
    assert _live_grants(app, stranger.id, theirs.client_id) == 1
    # Without the form token: refused in plain words, nothing changes.
    mine = factories.client(first_party=True, name="Mine")
    authorize(web, mine, person)
    forged = web.post(f"/account/apps/{mine.client_id}/remove", {})
    assert forged.status_code == 400
    assert "This form has expired" in forged.text
    assert "CSRF" not in forged.text
    assert _live_grants(app, person.id, mine.client_id) == 1


# -- re-authentication -----------------------------------------------------------
def test_reauth_with_an_authenticator_code(app, person, web):
    secret, _ = enable_totp_directly(app, person.id)
    make_stale(app, person.id)
    assert 'name="password"' in web.get("/account/devices/sign-out-all").text

    page = web.get("/account/confirm?next=/account/devices/sign-out-all")
    assert page.status_code == 200
    step = steady_step()
    wrong = web.post(
        "/account/confirm",
        {
            "csrf_token": csrf_token(page.text),
            "code": wrong_code(secret, step),
            "next": "/account/devices/sign-out-all",
        },
    )
    assert wrong.status_code == 401
    # The error sits next to its field and is tied to it.
    assert 'aria-describedby="code-error"' in wrong.text
    assert 'id="code-error" role="alert">That code is not right' in wrong.text
    assert event_tags(app, person.id)[-1] == "account:reauth:failure"

    right = web.post(
        "/account/confirm",
        {
            "csrf_token": csrf_token(page.text),
            "code": code_at(secret, step),
            "next": "/account/devices/sign-out-all",
        },
    )
    assert right.status_code == 302
    assert right.location == "/account/devices/sign-out-all"
    fresh = web.get("/account/devices/sign-out-all").text
    assert 'name="password"' not in fresh
    assert "that is confirmed" in fresh
    assert event_tags(app, person.id)[-1] == "account:reauth:success"


def test_reauth_with_a_recovery_code_and_never_to_another_site(app, person, web):
    _, codes = enable_totp_directly(app, person.id)
    make_stale(app, person.id)
    for target in ("https://evil.example/", "//evil.example/x", "javascript:x"):
        page = web.get("/account/confirm?" + urlencode({"next": target}))
        assert 'name="next" value="/"' in page.text or "evil" not in page.text
        done = web.post(
            "/account/confirm",
            {
                "csrf_token": csrf_token(page.text),
                "recovery_code": codes.pop(),
                "next": target,
            },
        )
        assert done.status_code == 302
        assert done.location.startswith("/"), done.location
        assert not done.location.startswith("//")
    assert "account:2fa:recovery_code_used" in event_tags(app, person.id)


def test_reauth_with_the_password(app, person, web):
    make_stale(app, person.id)
    page = web.get("/account/confirm?next=/account/delete")
    refused = web.post(
        "/account/confirm",
        {"csrf_token": csrf_token(page.text), "password": "not it", "next": "/"},
    )
    assert refused.status_code == 401
    assert 'id="password-error" role="alert">That password is not right' in (
        refused.text
    )
    done = web.post(
        "/account/confirm",
        {
            "csrf_token": csrf_token(page.text),
            "password": person.password,
            "next": "/account/delete",
        },
    )
    assert done.location == "/account/delete"
    assert 'name="password"' not in web.get("/account/delete").text


# -- deleting one's own account, the display name ----------------------------------
def test_delete_own_account_asks_and_needs_a_fresh_sign_in(app, person, web):
    make_stale(app, person.id)
    page = web.get("/account/delete")
    assert "Delete your account for good?" in page.text
    refused = web.post(
        "/account/delete", {"csrf_token": csrf_token(page.text), "password": "x"}
    )
    assert refused.status_code == 401
    assert account_row(app, person.id).status == AccountStatus.ACTIVE

    done = web.post(
        "/account/delete",
        {"csrf_token": csrf_token(page.text), "password": person.password},
    )
    assert done.status_code == 200
    assert "Your account is deleted" in done.text
    assert account_row(app, person.id).status == AccountStatus.DELETED
    assert web.get("/account").status_code == 302
    assert submit_password(Web(app), person).status_code == 401


def test_display_name(app, person, web):
    page = web.get("/account")
    saved = web.post(
        "/account/profile",
        {"csrf_token": csrf_token(page.text), "name": "  Ada   Lovelace "},
    )
    assert saved.status_code == 302
    assert "Your name is saved." in web.get("/account").text
    assert account_row(app, person.id).name == "Ada Lovelace"
    assert event_tags(app, person.id)[-1] == "account:profile:updated"

    too_long = web.post(
        "/account/profile", {"csrf_token": csrf_token(page.text), "name": "x" * 201}
    )
    assert too_long.status_code == 400
    assert 'aria-invalid="true"' in too_long.text
    assert account_row(app, person.id).name == "Ada Lovelace"


# -- connected devices are the live ones -------------------------------------------
def test_a_signed_out_browser_leaves_the_device_list(app, person, web):
    other = Web(app)
    sign_in(other, person)
    assert web.get("/account/devices").text.count('class="device card"') == 2
    other.post("/logout", {"csrf_token": csrf_token(other.get("/logout").text)})
    listed = web.get("/account/devices").text
    assert listed.count('class="device card"') == 1
    assert 'data-this-device="true"' in listed


# -- a forced reset goes back to the app -------------------------------------------
def test_forced_reset_returns_to_the_app_being_signed_in_to(app, factories, person):
    client = factories.client(first_party=True, name="Notes")
    with app.app_context():
        db.session.execute(
            Account.__table__.update()
            .where(Account.id == person.id)
            .values(must_reset_password=True)
        )
        db.session.commit()
        db.session.remove()
    web = Web(app)
    _, challenge = pkce_pair()
    authorize_url = "/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": "openid",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    login = web.get(authorize_url)
    signed_in = submit_password(web, person, login_path=login.location)
    forced = urlsplit(signed_in.location)
    assert forced.path == "/account/password"
    back_to = parse_qs(forced.query)["next"][0]
    assert back_to.startswith("/authorize?")
    page = web.get(signed_in.location)
    changed = web.post(
        signed_in.location,
        {
            "csrf_token": csrf_token(page.text),
            "current_password": person.password,
            "password": "a new and long passphrase 31415",
            "sign_out_everywhere": "y",
        },
    )
    assert changed.status_code == 302
    assert changed.location == back_to
    redirected = web.get(changed.location)
    assert redirected.status_code == 302
    assert redirected.location.startswith(client.redirect_uri + "?code=")


def test_relative_times_read_as_people_say_them():
    from datetime import datetime, timedelta

    from app.web.common import relative_time

    now = datetime(2026, 11, 30, 12, 0)
    said = {
        seconds: relative_time(now - timedelta(seconds=seconds), now)
        for seconds in (5, 60, 125, 3600, 7300, 86400, 3 * 86400, 40 * 86400)
    }
    assert said == {
        5: "just now",
        60: "1 minute ago",
        125: "2 minutes ago",
        3600: "1 hour ago",
        7300: "2 hours ago",
        86400: "yesterday",
        3 * 86400: "3 days ago",
        40 * 86400: "on 21 Oct 2026",
    }


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/account/profile", {"name": "Forged"}),
        ("/account/delete", {"password": "placeholder"}),
        ("/account/confirm", {"password": "placeholder"}),
        ("/account/email", {"new_email": "forged@example.com"}),
    ],
)
def test_the_new_account_forms_without_their_token_change_nothing(
    app, person, web, path, fields
):
    password = person.password
    fields = {k: password if v == "placeholder" else v for k, v in fields.items()}
    before = account_row(app, person.id)
    tags = event_tags(app, person.id)
    forged = web.post(path, fields)
    assert forged.status_code in (302, 400), forged.status_code
    assert "CSRF" not in forged.text
    after = account_row(app, person.id)
    assert (after.name, after.status, after.email) == (
        before.name,
        before.status,
        before.email,
    )
    assert event_tags(app, person.id) == tags
