"""A grant made in a browser session without offline_access ends with that
session, whatever ends it (OIDC Core §11, Back-Channel Logout §2.7): its
refresh token is invalid_grant, its access token introspects inactive and
/userinfo refuses it, and each relying party gets a logout token. The
offline_access grant of the same sign-in outlives the session, except when
the device or the whole account is cut off. Against live servers; the
upstream provider's back-channel logout is in tests/federation."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.apps.services import apps_with_access
from app.devices.services import connected_devices, sweep_expired_sessions
from app.extensions import db
from app.models import Account, BrowserSession, Grant, OutboxMessage
from app.models.base import utcnow
from tests.flows.backchannel_rp import RecordingRP
from tests.flows.device_helpers import (
    devices_page,
    events,
    sign_out_device,
    sign_out_everywhere,
    unverified_claims,
)
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
from tests.flows.session_helpers import (
    BOUND_SCOPE,
    OFFLINE_SCOPE,
    assert_alive,
    assert_dead,
    assert_outlives_session,
    deliver_logouts,
    logout_claims,
    sign_in_twice,
)
from tests.support.oauth import verify_id_token

SIGNED_OUT = "http://127.0.0.1:8765/signed-out"
LOGOUT = "account:logout"
EXPIRED = "account:session:expired"
REUSED = "oauth:refresh:reused"


@pytest.fixture
def recording_rp():
    rp = RecordingRP()
    yield rp
    rp.stop()


@pytest.fixture
def app_client(factories, recording_rp):
    """A relying party told of logouts by back-channel, with a registered
    post-logout redirect URI."""
    return factories.client(
        name="Photo App",
        backchannel_logout_uri=recording_rp.url,
        post_logout_redirect_uris=[SIGNED_OUT],
    )


@pytest.fixture
def signed_in(browser, base_url, person, app_client, jwks, issuer):
    """``browser`` signed in; app_client holds a bound and an offline grant."""
    return sign_in_twice(browser, base_url, person, app_client, jwks, issuer)


def _session(app, sid) -> BrowserSession:
    with app.app_context():
        row = db.session.execute(
            select(BrowserSession).where(BrowserSession.sid == sid)
        ).scalar_one()
        db.session.expunge(row)
        db.session.remove()
    return row


def _grants_untouched(app, person_id) -> bool:
    """No grant row was written: the end of a session is one row update."""
    with app.app_context():
        revoked = db.session.execute(
            select(Grant.revoked_at).where(Grant.account_id == person_id)
        ).scalars()
        result = all(r is None for r in revoked)
        db.session.remove()
    return result


def _assert_rp_told(app, recording_rp, jwks, issuer, client, sid, person):
    deliver_logouts(app)
    (claims,) = logout_claims(recording_rp, jwks, issuer, client)
    assert claims["sid"] == sid
    assert claims["sub"] == person.id


def _end_session_url(base_url):
    return base_url + "/logout/end"


# -- each way a session ends ----------------------------------------------------
def test_rp_initiated_logout_ends_the_session_bound_grant(
    app,
    base_url,
    browser,
    person,
    app_client,
    rs,
    signed_in,
    recording_rp,
    jwks,
    issuer,
):
    assert_alive(base_url, rs, app_client, signed_in.bound)
    response = browser.get(
        _end_session_url(base_url),
        params={
            "id_token_hint": signed_in.bound["id_token"],
            "post_logout_redirect_uri": SIGNED_OUT,
            "state": "s1",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == SIGNED_OUT + "?state=s1"

    assert_dead(base_url, rs, app_client, signed_in.bound)
    assert_outlives_session(base_url, rs, app_client, signed_in.offline, signed_in.sid)
    _assert_rp_told(app, recording_rp, jwks, issuer, app_client, signed_in.sid, person)
    session = _session(app, signed_in.sid)
    assert session.end_cause == "rp_logout"
    assert session.ended_by_client_id == app_client.client_id
    assert _grants_untouched(app, person.id)
    assert events(app, person.id, REUSED) == []


def test_signing_out_here_ends_the_session_bound_grant(
    app,
    base_url,
    browser,
    person,
    app_client,
    rs,
    signed_in,
    recording_rp,
    jwks,
    issuer,
):
    page = browser.get(base_url + "/logout", timeout=TIMEOUT)
    response = browser.post(
        base_url + "/logout",
        data={"csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 302

    assert_dead(base_url, rs, app_client, signed_in.bound)
    assert_outlives_session(base_url, rs, app_client, signed_in.offline, signed_in.sid)
    _assert_rp_told(app, recording_rp, jwks, issuer, app_client, signed_in.sid, person)
    assert _session(app, signed_in.sid).end_cause == "logout"
    assert _grants_untouched(app, person.id)


def test_session_expiry_ends_the_session_bound_grant(
    app, base_url, person, app_client, rs, signed_in, recording_rp, jwks, issuer
):
    with app.app_context():
        db.session.execute(
            update(BrowserSession)
            .where(BrowserSession.sid == signed_in.sid)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        db.session.remove()
    # Dead the moment the session expires, before any sweep ran ...
    assert_dead(base_url, rs, app_client, signed_in.bound)
    assert_outlives_session(base_url, rs, app_client, signed_in.offline, signed_in.sid)
    # ... and the outbox worker's sweep tells the relying party and the person.
    result = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    assert "ended 1 expired sessions" in result.output, result.output
    with app.app_context():
        assert sweep_expired_sessions() == 0  # once
        db.session.remove()
    _assert_rp_told(app, recording_rp, jwks, issuer, app_client, signed_in.sid, person)
    (event,) = events(app, person.id, EXPIRED)
    assert event.details["sid"] == signed_in.sid
    assert _session(app, signed_in.sid).end_cause == "expired"

    # The person's other browser shows how that session ended: in the
    # history (the devices page lists only what can still act as them).
    with new_browser() as other:
        sign_in(other, base_url, person)
        history = other.get(base_url + "/account/security", timeout=TIMEOUT).text
        assert "Signed out: the session expired" in history


def test_signing_out_the_device_ends_both_grants(
    app, base_url, person, app_client, rs, signed_in, recording_rp, jwks, issuer
):
    device_id = _session(app, signed_in.sid).device_id
    with new_browser() as other:
        sign_in(other, base_url, person)
        assert sign_out_device(other, base_url, device_id).status_code == 302
    # "Sign out this device" cuts off offline access too.
    assert_dead(base_url, rs, app_client, signed_in.bound)
    assert_dead(base_url, rs, app_client, signed_in.offline)
    _assert_rp_told(app, recording_rp, jwks, issuer, app_client, signed_in.sid, person)
    assert _session(app, signed_in.sid).end_cause == "device_signed_out"


def test_signing_out_of_all_devices_ends_both_grants(
    app,
    base_url,
    browser,
    person,
    app_client,
    rs,
    signed_in,
    recording_rp,
    jwks,
    issuer,
):
    response = sign_out_everywhere(browser, base_url, person.password)
    assert response.status_code == 302, response.text
    assert_dead(base_url, rs, app_client, signed_in.bound)
    assert_dead(base_url, rs, app_client, signed_in.offline)
    _assert_rp_told(app, recording_rp, jwks, issuer, app_client, signed_in.sid, person)


def test_a_password_change_that_signs_out_other_sessions(
    app, base_url, person, app_client, rs, signed_in, recording_rp, jwks, issuer
):
    # Another browser changes the password with "sign out connected devices"
    # ticked: that is "sign out of all devices", offline access included.
    with new_browser() as here:
        sign_in(here, base_url, person)
        page = here.get(base_url + "/account/password", timeout=TIMEOUT)
        response = here.post(
            base_url + "/account/password",
            data={
                "csrf_token": csrf_token(page.text),
                "current_password": person.password,
                "password": "cobalt meadow kettle 51",
                "sign_out_everywhere": "y",
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert response.status_code == 302, response.text
    assert_dead(base_url, rs, app_client, signed_in.bound)
    assert_dead(base_url, rs, app_client, signed_in.offline)
    _assert_rp_told(app, recording_rp, jwks, issuer, app_client, signed_in.sid, person)


def test_a_new_sign_in_in_another_browser_changes_nothing(
    base_url, person, app_client, rs, signed_in
):
    with new_browser() as other:
        sign_in(other, base_url, person)
    assert_alive(base_url, rs, app_client, signed_in.bound)
    assert_alive(base_url, rs, app_client, signed_in.offline)


# -- what tokens carry ----------------------------------------------------------
def test_a_live_session_bound_grant_keeps_refreshing_with_its_sid(
    base_url, app_client, rs, signed_in
):
    response = refresh(base_url, app_client, signed_in.bound["refresh_token"])
    assert response.status_code == 200, response.text
    assert unverified_claims(response.json()["access_token"])["sid"] == signed_in.sid


def test_a_code_from_a_session_that_ended_is_refused_when_bound(
    app, base_url, browser, person, app_client, rs
):
    bound = AuthRequest.make(app_client, scope=BOUND_SCOPE)
    offline = AuthRequest.make(app_client, scope=OFFLINE_SCOPE)
    bound_code = get_code(browser, base_url, bound, person)
    offline_code = get_code(browser, base_url, offline, person)
    page = browser.get(base_url + "/logout", timeout=TIMEOUT)
    browser.post(
        base_url + "/logout",
        data={"csrf_token": csrf_token(page.text)},
        timeout=TIMEOUT,
    )
    # The sign-in this code came from is over: no grant bound to it is made.
    refused = redeem_code(base_url, bound, bound_code)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    # An offline_access code still works, but names no ended session.
    tokens = redeem_code(base_url, offline, offline_code)
    assert tokens.status_code == 200, tokens.text
    assert "sid" not in unverified_claims(tokens.json()["access_token"])
    assert "sid" not in unverified_claims(tokens.json()["id_token"])


# -- bad input --------------------------------------------------------------------
def _outbox_count(app) -> int:
    with app.app_context():
        count = len(db.session.execute(select(OutboxMessage.id)).all())
        db.session.remove()
    return count


def test_logout_for_a_session_that_already_ended_changes_nothing(
    app, base_url, browser, person, app_client, signed_in
):
    hint = {
        "id_token_hint": signed_in.bound["id_token"],
        "post_logout_redirect_uri": SIGNED_OUT,
        "state": "s2",
    }
    first = browser.get(
        _end_session_url(base_url), params=hint, allow_redirects=False, timeout=TIMEOUT
    )
    assert first.status_code == 302
    ended = _session(app, signed_in.sid)
    queued = _outbox_count(app)
    logouts = len(events(app, person.id, LOGOUT))

    # RP-Initiated Logout §2/§3: nobody is signed in here any more, so the
    # request is answered with the redirect it asked for, and ends nothing.
    again = browser.get(
        _end_session_url(base_url), params=hint, allow_redirects=False, timeout=TIMEOUT
    )
    assert again.status_code == 302
    assert again.headers["Location"] == SIGNED_OUT + "?state=s2"
    # Signed in again meanwhile: the old hint is not for this session, so
    # the person is asked and nothing ends by itself.
    sign_in(browser, base_url, person)
    asked = browser.get(
        _end_session_url(base_url), params=hint, allow_redirects=False, timeout=TIMEOUT
    )
    assert asked.status_code == 200
    assert (
        browser.get(
            base_url + "/account", allow_redirects=False, timeout=TIMEOUT
        ).status_code
        == 200
    )
    after = _session(app, signed_in.sid)
    assert (after.ended_at, after.end_cause) == (ended.ended_at, ended.end_cause)
    assert _outbox_count(app) == queued
    assert len(events(app, person.id, LOGOUT)) == logouts


# -- what the person sees -----------------------------------------------------------
def test_consent_says_when_an_app_stays_signed_in(base_url, browser, person, factories):
    client = factories.client(name="Calendar Sync")
    sign_in(browser, base_url, person)
    offline = walk_authorize(
        browser,
        base_url,
        AuthRequest.make(client, scope=OFFLINE_SCOPE).params(),
        approve=None,
    ).shown["consent"]
    assert "Calendar Sync asks to stay signed in after you sign out" in offline.text
    bound = walk_authorize(
        browser,
        base_url,
        AuthRequest.make(client, scope=BOUND_SCOPE).params(),
        approve=None,
    ).shown["consent"]
    assert "stay signed in" not in bound.text
    assert "access ends when you sign out" in bound.text


def test_history_says_which_app_signed_the_person_out(
    base_url, browser, person, app_client, signed_in
):
    browser.get(
        _end_session_url(base_url),
        params={"id_token_hint": signed_in.bound["id_token"]},
        timeout=TIMEOUT,
    )
    with new_browser() as other:
        sign_in(other, base_url, person)
        # The devices page lists only what can still act as the person
        # (issue 11); how a session ended is told by the history.
        assert "Signed out from Photo App" not in devices_page(other, base_url).text
        history = other.get(base_url + "/account/security", timeout=TIMEOUT).text
        assert "Signed out from Photo App" in history


def test_a_bound_grant_of_another_browser_is_unaffected(
    base_url, person, app_client, rs, signed_in, jwks, issuer
):
    with new_browser() as other:
        mine = tokens_for(other, base_url, person, app_client, scope=BOUND_SCOPE)
        page = other.get(base_url + "/logout", timeout=TIMEOUT)
        other.post(
            base_url + "/logout",
            data={"csrf_token": csrf_token(page.text)},
            timeout=TIMEOUT,
        )
        assert_dead(base_url, rs, app_client, mine)
    assert_alive(base_url, rs, app_client, signed_in.bound)


# -- signing in again ---------------------------------------------------------------
def test_signing_in_again_in_the_same_browser_keeps_the_session(
    base_url, browser, person, app_client, rs, signed_in, factories, jwks, issuer
):
    # Another app asks for a fresh sign-in (prompt=login): the session is
    # renewed in place, with a new cookie, so nobody is signed out.
    old_cookie = browser.cookies.get("lk_session")
    bank = factories.client(name="Bank")
    fresh = tokens_for(browser, base_url, person, bank, prompt="login")
    claims = verify_id_token(fresh["id_token"], jwks, issuer, bank.client_id)
    assert claims["sid"] == signed_in.sid
    first = verify_id_token(
        signed_in.bound["id_token"], jwks, issuer, app_client.client_id
    )
    assert claims["auth_time"] >= first["auth_time"]
    assert browser.cookies.get("lk_session") not in (None, old_cookie)
    assert_alive(base_url, rs, app_client, signed_in.bound)


def test_someone_else_signing_in_in_that_browser_ends_the_session(
    app, base_url, browser, factories, app_client, rs, signed_in
):
    sign_in(browser, base_url, factories.account())
    assert_dead(base_url, rs, app_client, signed_in.bound)
    assert _session(app, signed_in.sid).end_cause == "replaced"


def test_the_sweep_marks_sessions_cut_off_otherwise_without_telling_again(
    app, base_url, browser, person, app_client, signed_in, recording_rp
):
    # Signed out of all devices: the session is dead by the account's
    # generation, and its apps were told then. When its lifetime runs out
    # later, the sweep only marks it; no "session expired", no second notice.
    assert sign_out_everywhere(browser, base_url, person.password).status_code == 302
    deliver_logouts(app)
    told = len(recording_rp.tokens)
    with app.app_context():
        db.session.execute(
            update(BrowserSession)
            .where(BrowserSession.sid == signed_in.sid)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        assert sweep_expired_sessions() == 0
        db.session.remove()
    deliver_logouts(app)
    assert len(recording_rp.tokens) == told
    assert events(app, person.id, EXPIRED) == []
    assert _session(app, signed_in.sid).end_cause == "account_signed_out"


def test_the_account_pages_count_only_live_grants_after_the_session_ends(
    app, base_url, browser, person, app_client, signed_in
):
    """The apps and devices pages apply the one liveness rule (app.cutoff.liveness):
    the bound grant is gone with its session, the offline one stays."""

    def listed():
        with app.app_context():
            account = db.session.get(Account, person.id)
            (access,) = apps_with_access(account)
            apps = [a.client_id for v in connected_devices(account) for a in v.apps]
            db.session.remove()
        return access.grants, apps

    assert listed() == (2, [app_client.client_id])
    page = browser.get(base_url + "/logout", timeout=TIMEOUT)
    browser.post(
        base_url + "/logout",
        data={"csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert listed() == (1, [app_client.client_id])
