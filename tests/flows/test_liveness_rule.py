"""The one liveness rule (app/cutoff/liveness.py) against each artifact that
acts as a person (a browser session, an authorization code, a grant, an
approved device code) and each way of cutting it off: the account's
generation bumped, the account deactivated, its device signed out, and its
own end (expired, revoked). Each cut-off changes one column only, so each
condition of the rule is seen on its own, first through ``is_live`` on the
rows as ``with_context`` loads them, then through the endpoints that use
it: /account, /token (code, refresh and device-code polls), introspection
and userinfo."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.cutoff.liveness import is_live, with_context
from app.cutoff.services import cut_off_account, revoke_grant
from app.extensions import db
from app.models import (
    Account,
    AccountStatus,
    AuthorizationCode,
    BrowserSession,
    Device,
    DeviceCode,
    Grant,
)
from app.models.base import utcnow
from app.security.opaque_tokens import hash_token
from tests.flows.device_helpers import (
    assert_inactive,
    assert_refresh_rejected,
    grant_of_refresh_token,
    introspection,
    is_signed_in,
    link_device,
    poll,
    start_device_flow,
)
from tests.flows.helpers import (
    AuthRequest,
    assert_json_error,
    get_code,
    redeem_code,
    sign_in,
    tokens_for,
    userinfo,
)

CUT_OFFS = ["generation", "deactivated", "device", "own"]
# offline_access, so that the grant's own liveness is seen apart from its
# session's (tests/flows/test_session_bound_grants.py covers bound grants).
GRANT_SCOPE = "openid profile offline_access"


@dataclass
class Held:
    """One artifact: its model, how to pick its row, and what a client holds."""

    model: type
    key: object  # the WHERE clause that picks the row
    credential: dict


def _row(app, held: Held):
    """The artifact as the rule sees it: (row, account, device[, session])."""
    with app.app_context():
        row = db.session.execute(with_context(held.model).where(held.key)).first()
        assert row is not None
        live = is_live(*row)
        device_id = row[0].device_id
        db.session.remove()
    return live, device_id


def _cut_off(app, how: str, held: Held, account_id: str, device_id: str) -> None:
    """Cut ``held`` off one way, changing only what that way changes."""
    with app.app_context():
        if how == "generation":
            cut_off_account(account_id)
        elif how == "deactivated":
            # The status alone (deactivation also bumps the generation).
            db.session.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(status=AccountStatus.DEACTIVATED)
            )
        elif how == "device":
            # The device row alone (signing a device out also ends its sessions).
            db.session.execute(
                update(Device).where(Device.id == device_id).values(revoked_at=utcnow())
            )
        elif held.model is Grant:
            assert revoke_grant(
                db.session.execute(select(Grant.id).where(held.key)).scalar_one(),
                "test",
            )
        else:
            db.session.execute(
                update(held.model)
                .where(held.key)
                .values(expires_at=utcnow() - timedelta(seconds=1))
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        db.session.remove()


def _hold(kind, base_url, browser, person, factories) -> Held:
    sign_in(browser, base_url, person)
    if kind == "session":
        return Held(BrowserSession, None, {})
    if kind == "code":
        auth = AuthRequest.make(factories.client())
        code = get_code(browser, base_url, auth, person)
        key = AuthorizationCode.code_hash == hash_token(code)
        return Held(AuthorizationCode, key, {"auth": auth, "code": code})
    if kind == "grant":
        client = factories.client()
        tokens = tokens_for(browser, base_url, person, client, scope=GRANT_SCOPE)
        return Held(Grant, None, {"client": client, "tokens": tokens})
    tv = factories.client(device=True, name="Living Room Player")
    started = start_device_flow(base_url, tv, scope=GRANT_SCOPE)
    link_device(browser, base_url, started["user_code"])  # approved, not polled
    key = DeviceCode.device_code_hash == hash_token(started["device_code"])
    return Held(DeviceCode, key, {"client": tv, "device_code": started["device_code"]})


def _assert_refused(kind, how, base_url, browser, held: Held, rs) -> None:
    """Every endpoint that asks the rule now says no."""
    if kind == "session":
        assert not is_signed_in(browser, base_url)
    elif kind == "code":
        response = redeem_code(
            base_url, held.credential["auth"], held.credential["code"]
        )
        assert_json_error(response, 400, "invalid_grant")
    elif kind == "grant":
        tokens = held.credential["tokens"]
        assert_inactive(base_url, rs, tokens["access_token"])
        assert_inactive(base_url, rs, tokens["refresh_token"])
        assert userinfo(base_url, tokens["access_token"]).status_code == 401
        assert_refresh_rejected(
            base_url, held.credential["client"], tokens["refresh_token"]
        )
    else:
        response = poll(
            base_url, held.credential["client"], held.credential["device_code"]
        )
        # RFC 8628 §3.5: past its lifetime it is expired_token; cut off, the
        # person's approval no longer stands.
        error = "expired_token" if how == "own" else "access_denied"
        assert_json_error(response, 400, error)


@pytest.mark.parametrize("how", CUT_OFFS)
@pytest.mark.parametrize("kind", ["session", "code", "grant", "device_code"])
def test_each_artifact_dies_by_each_cut_off(
    app, base_url, browser, person, factories, kind, how
):
    rs = factories.client(machine=True, may_introspect=True, name="Photo API")
    held = _hold(kind, base_url, browser, person, factories)
    with app.app_context():
        if kind == "session":
            held.key = (
                BrowserSession.sid
                == db.session.execute(
                    select(BrowserSession.sid).where(
                        BrowserSession.account_id == person.id,
                        BrowserSession.ended_at.is_(None),
                    )
                ).scalar_one()
            )
        db.session.remove()
    if kind == "grant":
        grant_id = grant_of_refresh_token(
            app, held.credential["tokens"]["refresh_token"]
        )
        held.key = Grant.id == grant_id
        assert introspection(base_url, rs, held.credential["tokens"]["access_token"])[
            "active"
        ]
    live, device_id = _row(app, held)
    assert live, "the artifact is live before it is cut off"
    if kind == "session":
        assert is_signed_in(browser, base_url)

    _cut_off(app, how, held, person.id, device_id)

    live, _ = _row(app, held)
    assert not live
    _assert_refused(kind, how, base_url, browser, held, rs)
