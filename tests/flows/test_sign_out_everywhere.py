"""Sign out of all devices, and of one, from /account/devices against live
servers: every session, grant, token and pending code of the account is cut
off at once (and nothing of anyone else's); the password is asked for when
the sign-in is old; the database never held any of it in plain text."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import BrowserSession
from app.security.opaque_tokens import hash_token
from tests.flows.device_helpers import (
    STRICT,
    assert_inactive,
    assert_refresh_rejected,
    device_tokens,
    devices_page,
    events,
    introspection,
    is_signed_in,
    link_device,
    poll,
    revoke,
    shared_server,
    sign_out_all_page,
    sign_out_device,
    sign_out_everywhere,
    start_device_flow,
    unverified_claims,
)
from tests.flows.helpers import (
    AuthRequest,
    assert_json_error,
    get_code,
    new_browser,
    redeem_code,
    refresh,
    sign_in,
    tokens_for,
    userinfo,
)
from tests.test_storage_invariant import dump_database

SIGNED_OUT_ALL = "account:devices:signed_out_all"
SIGNED_OUT_ONE = "account:device:signed_out"
SCOPE = "openid profile offline_access"


@pytest.fixture(scope="module")
def always_reauth(request, app, base_env, log_dir):
    """A server that asks for the password before signing out everywhere."""
    return shared_server(request, base_env, log_dir, STRICT).url


@dataclass
class Holdings:
    """Everything one account holds across its devices."""

    grants: list = field(default_factory=list)  # (client, token response)
    unused_code: tuple | None = None  # (AuthRequest, code)
    pending_device_code: str | None = None


def _hold_everything(base_url, person, rp, other_rp, tv, first, second) -> Holdings:
    sign_in(first, base_url, person)
    sign_in(second, base_url, person)
    held = Holdings()
    held.grants.append((rp, tokens_for(first, base_url, person, rp, scope=SCOPE)))
    held.grants.append((rp, tokens_for(second, base_url, person, rp, scope=SCOPE)))
    held.grants.append(
        (other_rp, tokens_for(second, base_url, person, other_rp, scope=SCOPE))
    )
    held.grants.append(
        (tv, device_tokens(base_url, first, tv, scope=SCOPE, device_name="Den TV"))
    )
    auth = AuthRequest.make(other_rp, scope=SCOPE)
    held.unused_code = (auth, get_code(second, base_url, auth, person))
    pending = start_device_flow(base_url, tv, scope=SCOPE, device_name="Attic TV")
    link_device(second, base_url, pending["user_code"])  # approved, never polled
    held.pending_device_code = pending["device_code"]
    return held


def _assert_all_live(base_url, rs, held: Holdings) -> None:
    for _client, tokens in held.grants:
        assert introspection(base_url, rs, tokens["access_token"])["active"] is True
        assert introspection(base_url, rs, tokens["refresh_token"])["active"] is True


def _assert_all_cut_off(base_url, rs, tv, held: Holdings) -> None:
    for client, tokens in held.grants:
        assert_inactive(base_url, rs, tokens["access_token"])
        assert_inactive(base_url, rs, tokens["refresh_token"])
        assert userinfo(base_url, tokens["access_token"]).status_code == 401
        assert_refresh_rejected(base_url, client, tokens["refresh_token"])
    pending = poll(base_url, tv, held.pending_device_code)
    assert pending.status_code == 400, pending.text
    assert pending.json()["error"] in ("access_denied", "expired_token")
    auth, code = held.unused_code
    assert_json_error(redeem_code(base_url, auth, code), 400, "invalid_grant")


# -- sign out of all devices ---------------------------------------------------------
def test_sign_out_of_all_devices(
    app, base_url, rs, factories, person, rp, tv, browser, second_browser
):
    other_rp = factories.client(name="Calendar")
    held = _hold_everything(base_url, person, rp, other_rp, tv, browser, second_browser)
    _assert_all_live(base_url, rs, held)
    # Someone else's account is not touched.
    stranger = factories.account()
    with new_browser() as theirs:
        sign_in(theirs, base_url, stranger)
        their_tokens = tokens_for(theirs, base_url, stranger, rp, scope=SCOPE)

        response = sign_out_everywhere(browser, base_url)
        assert response.status_code == 302, response.text[:300]
        assert response.headers["Location"].startswith("/login")

        _assert_all_cut_off(base_url, rs, tv, held)
        assert not is_signed_in(browser, base_url)
        assert not is_signed_in(second_browser, base_url)
        assert is_signed_in(theirs, base_url)
        assert refresh(base_url, rp, their_tokens["refresh_token"]).status_code == 200
    (event,) = events(app, person.id, SIGNED_OUT_ALL)
    assert event.details["reason"] == "user_request"

    # It is not a lock-out: signing in again works, and so does doing it twice.
    sign_in(browser, base_url, person)
    fresh = tokens_for(browser, base_url, person, rp, scope=SCOPE)
    assert introspection(base_url, rs, fresh["access_token"])["active"] is True
    assert sign_out_everywhere(browser, base_url).status_code == 302
    assert_inactive(base_url, rs, fresh["access_token"])
    assert_refresh_rejected(base_url, rp, fresh["refresh_token"])
    assert not is_signed_in(browser, base_url)
    assert len(events(app, person.id, SIGNED_OUT_ALL)) == 2


def test_sign_out_everywhere_without_csrf_token_changes_nothing(
    app, base_url, rs, person, rp, browser
):
    sign_in(browser, base_url, person)
    tokens = tokens_for(browser, base_url, person, rp, scope=SCOPE)
    response = browser.post(
        base_url + "/account/devices/sign-out-all",
        data={"password": person.password},
        allow_redirects=False,
    )
    assert response.status_code == 400
    assert is_signed_in(browser, base_url)
    assert introspection(base_url, rs, tokens["access_token"])["active"] is True
    assert refresh(base_url, rp, tokens["refresh_token"]).status_code == 200
    assert events(app, person.id, SIGNED_OUT_ALL) == []


def test_an_old_sign_in_must_give_the_password(
    app, always_reauth, rs, person, rp, browser
):
    sign_in(browser, always_reauth, person)
    tokens = tokens_for(browser, always_reauth, person, rp, scope=SCOPE)
    page = sign_out_all_page(browser, always_reauth)
    assert 'name="password"' in page.text
    for password in (None, "", "not the password"):
        refused = sign_out_everywhere(browser, always_reauth, password=password)
        assert refused.status_code == 401, refused.text[:300]
        assert "Enter your password" in refused.text
        # Nothing was cut off.
        assert is_signed_in(browser, always_reauth)
        assert introspection(always_reauth, rs, tokens["access_token"])["active"]
    assert events(app, person.id, SIGNED_OUT_ALL) == []
    tokens = refresh(always_reauth, rp, tokens["refresh_token"]).json()

    done = sign_out_everywhere(browser, always_reauth, password=person.password)
    assert done.status_code == 302
    assert not is_signed_in(browser, always_reauth)
    assert_inactive(always_reauth, rs, tokens["access_token"])
    assert_refresh_rejected(always_reauth, rp, tokens["refresh_token"])
    assert len(events(app, person.id, SIGNED_OUT_ALL)) == 1


def test_default_reauth_age_asks_only_after_five_minutes(
    app, base_url, person, browser
):
    sign_in(browser, base_url, person)
    assert 'name="password"' not in sign_out_all_page(browser, base_url).text
    with app.app_context():
        sessions = db.session.execute(
            select(BrowserSession).where(BrowserSession.account_id == person.id)
        ).scalars()
        for row in sessions:
            row.auth_time -= timedelta(minutes=6)
        db.session.commit()
        db.session.remove()
    assert 'name="password"' in sign_out_all_page(browser, base_url).text
    assert sign_out_everywhere(browser, base_url).status_code == 401
    assert is_signed_in(browser, base_url)
    response = sign_out_everywhere(browser, base_url, password=person.password)
    assert response.status_code == 302
    assert not is_signed_in(browser, base_url)


def test_password_guessing_through_sign_out_everywhere_is_limited(
    app, always_reauth, person, browser
):
    """A thief holding an old session cannot use this form as a password
    oracle: each wrong password is an event, and the tenth is the last."""
    sign_in(browser, always_reauth, person)
    answers = [
        sign_out_everywhere(browser, always_reauth, password=f"guess {n}").status_code
        for n in range(11)
    ]
    assert answers == [401] * 10 + [429]
    assert len(events(app, person.id, "account:reauth:failure")) == 10
    # Even the right password waits out the window; nothing was cut off.
    assert (
        sign_out_everywhere(
            browser, always_reauth, password=person.password
        ).status_code
        == 429
    )
    assert is_signed_in(browser, always_reauth)


# -- sign out one device ------------------------------------------------------------
def test_sign_out_one_device(
    app, base_url, rs, factories, person, rp, tv, browser, second_browser
):
    sign_in(browser, base_url, person)
    sign_in(second_browser, base_url, person)
    mine = tokens_for(browser, base_url, person, rp, scope=SCOPE)
    theirs = tokens_for(second_browser, base_url, person, rp, scope=SCOPE)
    on_tv = device_tokens(base_url, browser, tv, scope=SCOPE, device_name="Den TV")
    second_device = unverified_claims(theirs["access_token"])["did"]
    tv_device = unverified_claims(on_tv["access_token"])["did"]
    my_device = unverified_claims(mine["access_token"])["did"]
    assert len({second_device, tv_device, my_device}) == 3

    response = sign_out_device(browser, base_url, second_device)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/devices"
    # That browser's session and grants are gone ...
    assert not is_signed_in(second_browser, base_url)
    assert_inactive(base_url, rs, theirs["access_token"])
    assert_refresh_rejected(base_url, rp, theirs["refresh_token"])
    # ... and nothing else.
    assert is_signed_in(browser, base_url)
    for tokens in (mine, on_tv):
        assert introspection(base_url, rs, tokens["access_token"])["active"] is True
    mine = refresh(base_url, rp, mine["refresh_token"]).json()
    on_tv = refresh(base_url, tv, on_tv["refresh_token"]).json()
    listed = devices_page(browser, base_url).text
    assert f'data-device-id="{second_device}"' not in listed
    assert f'data-device-id="{tv_device}"' in listed

    # The TV, by the same button.
    assert sign_out_device(browser, base_url, tv_device).status_code == 302
    assert_inactive(base_url, rs, on_tv["access_token"])
    assert_refresh_rejected(base_url, tv, on_tv["refresh_token"])
    assert introspection(base_url, rs, mine["access_token"])["active"] is True

    # This browser itself: signed out, sent to the login page.
    response = sign_out_device(browser, base_url, my_device)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert not is_signed_in(browser, base_url)
    assert_inactive(base_url, rs, mine["access_token"])
    assert len(events(app, person.id, SIGNED_OUT_ONE)) == 3
    assert events(app, person.id, SIGNED_OUT_ALL) == []


def test_cannot_sign_out_someone_elses_device(
    app, base_url, rs, factories, person, rp, browser, second_browser
):
    stranger = factories.account()
    sign_in(second_browser, base_url, stranger)
    theirs = tokens_for(second_browser, base_url, stranger, rp, scope=SCOPE)
    sign_in(browser, base_url, person)
    response = sign_out_device(
        browser, base_url, unverified_claims(theirs["access_token"])["did"]
    )
    assert response.status_code == 302
    assert is_signed_in(second_browser, base_url)
    assert introspection(base_url, rs, theirs["access_token"])["active"] is True
    assert events(app, person.id, SIGNED_OUT_ONE) == []


def test_sign_out_device_without_csrf_token_changes_nothing(
    base_url, person, browser, second_browser
):
    sign_in(browser, base_url, person)
    sign_in(second_browser, base_url, person)
    page = devices_page(browser, base_url).text
    other_ids = [
        chunk.split('"')[0]
        for chunk in page.split('data-device-id="')[1:]
        if "data-this-device" not in chunk.split("</li>")[0]
    ]
    assert len(other_ids) == 1
    response = browser.post(
        f"{base_url}/account/devices/{other_ids[0]}/sign-out", allow_redirects=False
    )
    assert response.status_code == 400
    assert is_signed_in(second_browser, base_url)


# -- storage ------------------------------------------------------------------
def _stored_text(app) -> str:
    """Every value of every row of every table, as one string."""
    return "\n".join(value for _table, _column, value in dump_database(app))


def test_no_secret_is_stored_in_plain_text(
    app, base_url, rs, factories, person, rp, tv, browser
):
    sign_in(browser, base_url, person)
    secrets_seen = [rp.secret, rs.secret, browser.cookies.get("lk_session")]
    secrets_seen.append(browser.cookies.get("lk_device"))
    started = start_device_flow(base_url, tv, scope=SCOPE, device_name="Den TV")
    user_code = started["user_code"]
    secrets_seen += [started["device_code"], user_code, user_code.replace("-", "")]
    link_device(browser, base_url, user_code.replace("-", "").lower())
    tokens = poll(base_url, tv, started["device_code"]).json()
    secrets_seen += [
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
    ]
    newer = refresh(base_url, tv, tokens["refresh_token"]).json()
    secrets_seen += [newer["access_token"], newer["refresh_token"]]
    code_flow = tokens_for(browser, base_url, person, rp, scope=SCOPE)
    secrets_seen += [code_flow["access_token"], code_flow["refresh_token"]]
    assert revoke(base_url, tv, newer["refresh_token"]).status_code == 200
    assert revoke(base_url, rp, code_flow["access_token"]).status_code == 200
    # A denied request and a pending one leave their codes behind as well.
    denied = start_device_flow(base_url, tv, scope=SCOPE)
    link_device(browser, base_url, denied["user_code"], approve=False)
    waiting = start_device_flow(base_url, tv, scope=SCOPE)
    for started in (denied, waiting):
        code = started["user_code"]
        secrets_seen += [started["device_code"], code, code.replace("-", "")]

    stored = _stored_text(app)
    # The walk does see the rows: the hashes kept in place of the codes.
    assert hash_token(waiting["device_code"]) in stored
    assert hash_token(waiting["user_code"].replace("-", "")) in stored
    assert hash_token(newer["refresh_token"]) in stored
    for secret in secrets_seen:
        assert secret
        assert secret not in stored
        # A user code is short: look for it in any case, with or without dash.
        if len(secret) <= 9:
            assert secret.lower() not in stored.lower()
