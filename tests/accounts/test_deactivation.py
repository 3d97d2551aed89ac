"""Deactivation (by the person or an operator), reactivation and deletion.

A deactivated account keeps its data but nothing authenticates: no sign-in
by any method, no refresh, no device-flow tokens, and introspection says
``active: false`` (RFC 7662 §2.2). Reactivation restores sign-in only.
Deletion removes the personal data and keeps a tombstone of the events.
"""

import json
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.accounts.services import create_account
from app.events.services import EventTag
from app.extensions import db
from app.federation.services import (
    AccountDeactivated,
    UpstreamIdentity,
    resolve_sign_in,
)
from app.models import (
    Account,
    AccountLink,
    AccountStatus,
    AuthorizationCode,
    BrowserSession,
    Consent,
    Device,
    DeviceCode,
    FederatedIdentity,
    Grant,
    OutboxMessage,
    RecoveryCode,
    RefreshToken,
    SecurityEvent,
)
from app.models.base import utcnow
from tests.accounts.helpers import (
    Web,
    account_row,
    authorize,
    code_at,
    delivered_mail,
    device_flow_approved,
    enable_totp_directly,
    events_of,
    introspect,
    is_signed_in,
    make_stale,
    poll,
    refresh,
    sign_in,
    steady_step,
    submit_password,
)
from tests.flows.helpers import csrf_token

INACTIVE = {"active": False}
DEACTIVATED_SUBJECT = "Your Latchkey account was deactivated"


@pytest.fixture
def person(factories):
    return factories.account(name="Katherine Johnson")


@pytest.fixture
def rp(factories):
    return factories.client(first_party=True, name="Notes")


def _everything(web, person, rp, tv):
    """Tokens from a code flow and a device flow, plus an approved device
    code not yet collected by the TV."""
    tokens = authorize(web, rp, person)
    device_code = device_flow_approved(web, tv)
    tv_tokens = poll(web, tv, device_code)
    assert tv_tokens.status_code == 200, tv_tokens.text
    pending = device_flow_approved(web, tv)
    return tokens, tv_tokens.get_json(), pending


def _assert_nothing_authenticates(app, person, rp, tv, rs, tokens, tv_tokens):
    """Sign-in, refresh, and introspection all refuse."""
    web = Web(app)
    refused = submit_password(web, person)
    assert refused.status_code == 401
    assert "Wrong email or password." in refused.text  # no hint of the status
    assert not is_signed_in(web)
    for client, refresh_token in (
        (rp, tokens["refresh_token"]),
        (tv, tv_tokens["refresh_token"]),
    ):
        response = refresh(web, client, refresh_token)
        assert response.status_code == 400, response.text
        assert response.get_json()["error"] == "invalid_grant"
    for token in (
        tokens["access_token"],
        tokens["refresh_token"],
        tv_tokens["access_token"],
        tv_tokens["refresh_token"],
    ):
        assert introspect(web, rs, token) == INACTIVE


def _run_cli(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["users", *args], input=input)


# -- by the person ----------------------------------------------------------------
def test_deactivating_oneself_cuts_off_everything_and_keeps_the_data(
    app, person, rp, tv, rs, mail_dir
):
    web = Web(app)
    sign_in(web, person)
    tokens, tv_tokens, pending = _everything(web, person, rp, tv)
    assert introspect(web, rs, tokens["access_token"])["active"] is True

    page = web.get("/account/deactivate")
    assert page.status_code == 200
    assert 'name="password"' not in page.text  # a fresh sign-in is enough
    done = web.post("/account/deactivate", {"csrf_token": csrf_token(page.text)})
    assert done.status_code == 200
    assert 'id="deactivated"' in done.text
    assert not is_signed_in(web)

    _assert_nothing_authenticates(app, person, rp, tv, rs, tokens, tv_tokens)
    # RFC 8628 §3.5: approved before, collected after: refused.
    late = poll(web, tv, pending)
    assert late.status_code == 400
    assert late.get_json()["error"] == "access_denied"
    # The device flow cannot start over: /link needs a sign-in.
    assert urlsplit(web.get("/link").location).path == "/login"

    row = account_row(app, person.id)
    assert row.status == AccountStatus.DEACTIVATED
    assert row.deactivated_at is not None
    assert row.email == person.email
    assert row.name == "Katherine Johnson"
    assert row.password_hash is not None
    with app.app_context():
        assert db.session.scalar(
            select(func.count()).select_from(Grant).where(Grant.account_id == person.id)
        )
        db.session.remove()
    (event,) = events_of(app, person.id, EventTag.DEACTIVATED)
    assert event.details["by"] == "self"
    assert event.ip == web.ip

    mails = delivered_mail(app, mail_dir, person.email)
    assert DEACTIVATED_SUBJECT in [m["Subject"] for m in mails]


def test_deactivating_after_an_old_sign_in_needs_the_password(app, person):
    web = Web(app)
    sign_in(web, person)
    make_stale(app, person.id)
    page = web.get("/account/deactivate")
    assert 'name="password"' in page.text
    token = csrf_token(page.text)

    # No CSRF token: refused before anything else.
    assert (
        web.post("/account/deactivate", {"password": person.password}).status_code
        == 400
    )
    assert web.post("/account/deactivate", {"csrf_token": token}).status_code == 401
    assert (
        web.post(
            "/account/deactivate", {"csrf_token": token, "password": "wrong password"}
        ).status_code
        == 401
    )
    assert account_row(app, person.id).status == AccountStatus.ACTIVE
    assert is_signed_in(web)

    done = web.post(
        "/account/deactivate", {"csrf_token": token, "password": person.password}
    )
    assert done.status_code == 200
    assert account_row(app, person.id).status == AccountStatus.DEACTIVATED


def test_a_deactivated_account_cannot_sign_in_through_a_provider(app, person):
    with app.app_context():
        db.session.add(
            FederatedIdentity(
                account_id=person.id, provider="upstream", subject="up-123"
            )
        )
        db.session.commit()
        db.session.remove()
    assert _run_cli(app, "deactivate", person.email).exit_code == 0
    with app.app_context(), pytest.raises(AccountDeactivated):
        resolve_sign_in(UpstreamIdentity("upstream", "up-123", person.email))


def test_deactivation_between_password_and_code_stops_the_sign_in(app, person):
    secret, _ = enable_totp_directly(app, person.id)
    web = Web(app)
    assert urlsplit(submit_password(web, person).location).path == "/login/2fa"
    form_page = web.get("/login/2fa")
    assert _run_cli(app, "deactivate", person.email).exit_code == 0

    # The right code, from the page shown before the deactivation.
    late = web.post(
        "/login/2fa",
        {
            "csrf_token": csrf_token(form_page.text),
            "code": code_at(secret, steady_step()),
        },
    )
    assert late.status_code == 302
    assert urlsplit(late.location).path == "/login"
    assert not is_signed_in(web)
    assert events_of(app, person.id, EventTag.LOGIN_SUCCESS) == []


# -- by an operator -------------------------------------------------------------
def test_operator_deactivates_and_reactivates(app, person, rp, tv, rs, mail_dir):
    web = Web(app)
    sign_in(web, person)
    tokens, tv_tokens, _ = _everything(web, person, rp, tv)

    result = _run_cli(app, "deactivate", person.email, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["status"] == "deactivated"
    assert shown["deactivated_at"]
    assert not is_signed_in(web)
    _assert_nothing_authenticates(app, person, rp, tv, rs, tokens, tv_tokens)

    again = _run_cli(app, "deactivate", person.email)
    assert again.exit_code == 1
    assert "not active" in again.output

    result = _run_cli(app, "reactivate", person.email, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "active"
    assert _run_cli(app, "reactivate", person.email).exit_code == 1

    # Sign-in works again; what was cut off stays cut off.
    fresh = Web(app)
    sign_in(fresh, person)
    assert refresh(fresh, rp, tokens["refresh_token"]).status_code == 400
    assert refresh(fresh, tv, tv_tokens["refresh_token"]).status_code == 400
    assert introspect(fresh, rs, tokens["access_token"]) == INACTIVE
    new_tokens = authorize(fresh, rp, person)
    assert introspect(fresh, rs, new_tokens["access_token"])["active"] is True

    (event,) = events_of(app, person.id, EventTag.DEACTIVATED)
    assert event.details["by"] == "operator"
    assert len(events_of(app, person.id, EventTag.REACTIVATED)) == 1
    subjects = [m["Subject"] for m in delivered_mail(app, mail_dir, person.email)]
    assert DEACTIVATED_SUBJECT in subjects
    assert "Your Latchkey account was reactivated" in subjects


def test_operator_commands_name_an_existing_account(app):
    for command in (["deactivate"], ["reactivate"], ["delete", "--yes"]):
        result = _run_cli(app, *command, "nobody@example.com")
        assert result.exit_code == 1
        assert "no account" in result.output


# -- deletion ------------------------------------------------------------------
def _count(model, **where) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    return db.session.scalar(query)


PERSONAL_ROWS = [
    (RecoveryCode, "account_id"),
    (FederatedIdentity, "account_id"),
    (Device, "account_id"),
    (BrowserSession, "account_id"),
    (Grant, "account_id"),
    (AuthorizationCode, "account_id"),
    (DeviceCode, "account_id"),
    (Consent, "account_id"),
    (AccountLink, "account_id"),
]


def test_delete_removes_personal_data_and_keeps_an_event_tombstone(
    app, factories, person, tv, rs
):
    rp = factories.client(
        first_party=True,
        name="Notes",
        backchannel_logout_uri="http://127.0.0.1:9/backchannel",
    )
    web = Web(app)
    sign_in(web, person)
    tokens, tv_tokens, _ = _everything(web, person, rp, tv)
    enable_totp_directly(app, person.id)
    with app.app_context():
        db.session.add_all(
            [
                FederatedIdentity(
                    account_id=person.id, provider="upstream", subject="up-9"
                ),
                Consent(
                    account_id=person.id, client_id=rp.client_id, scopes=["openid"]
                ),
            ]
        )
        db.session.commit()
        before = {m.__name__: _count(m, **{c: person.id}) for m, c in PERSONAL_ROWS}
        db.session.remove()
    assert before["RecoveryCode"] == 10
    assert min(before["Device"], before["Grant"], before["BrowserSession"]) > 0

    # Asked to confirm without --yes; "no" changes nothing.
    aborted = _run_cli(app, "delete", person.email, input="n\n")
    assert aborted.exit_code == 1
    assert account_row(app, person.id).email == person.email

    result = _run_cli(app, "delete", person.email, "--yes", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["status"] == "deleted"
    assert shown["email"] == f"deleted-{person.id}@invalid"

    with app.app_context():
        account = db.session.get(Account, person.id)
        assert account.status == AccountStatus.DELETED
        assert account.deleted_at is not None
        assert account.email == f"deleted-{person.id}@invalid"
        assert account.name == ""
        assert account.password_hash is None
        assert account.totp_secret_encrypted is None
        assert account.totp_enabled_at is None
        for model, column in PERSONAL_ROWS:
            assert _count(model, **{column: person.id}) == 0, model.__name__
        assert _count(RefreshToken) == 0
        events = list(
            db.session.execute(
                select(SecurityEvent)
                .where(SecurityEvent.account_id == person.id)
                .order_by(SecurityEvent.id)
            ).scalars()
        )
        tags = [e.tag for e in events]
        assert EventTag.LOGIN_SUCCESS in tags
        assert tags[-1] == EventTag.DELETED
        for event in events:
            assert (event.ip, event.user_agent, event.details) == ("", "", {})
            assert event.device_id is None
            assert event.created_at <= utcnow()
        # The relying party that asked to hear of logouts is told (OIDC
        # Back-Channel Logout), although the grant rows are gone.
        notices = [
            m.payload
            for m in db.session.execute(
                select(OutboxMessage).where(OutboxMessage.kind == "backchannel_logout")
            ).scalars()
        ]
        assert {"client_id": rp.client_id, "sub": person.id} in [
            {k: n[k] for k in ("client_id", "sub")} for n in notices
        ]
        db.session.remove()

    # Nothing authenticates as it, and the address is free again.
    _assert_nothing_authenticates(app, person, rp, tv, rs, tokens, tv_tokens)
    assert _run_cli(app, "delete", person.email, "--yes").exit_code == 1
    with app.app_context():
        again = create_account(
            app.extensions["latchkey"].passwords, person.email, "another long password"
        )
        assert again.id != person.id
        db.session.remove()


def test_delete_works_on_a_deactivated_account(app, person):
    assert _run_cli(app, "deactivate", person.email).exit_code == 0
    result = _run_cli(app, "delete", person.email, "--yes", "--json")
    assert result.exit_code == 0, result.output
    row = account_row(app, person.id)
    assert row.status == AccountStatus.DELETED
    assert row.deactivated_at is not None
    tags = [e.tag for e in events_of(app, person.id, EventTag.DEACTIVATED)]
    assert tags == [EventTag.DEACTIVATED]
