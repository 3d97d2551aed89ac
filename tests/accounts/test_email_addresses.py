"""One address, validated and normalised by email-validator, wherever an
address enters: sign-up, email change, the password-reset and sign-in
lookups, the CLI (tests/test_cli.py) and upstream claims.

Before: signing up with ``someone@example.com,other@example.com`` sent the
verification mail to both boxes, and whoever confirmed made ID tokens and
userinfo claim that string with ``email_verified: true``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.accounts.services import InvalidEmail, normalize_email
from app.extensions import db
from app.federation.providers import Provider
from app.federation.services import upstream_identity
from app.models import Account, OutboxMessage
from tests.accounts.helpers import Web, make_stale, sign_in, submit_password
from tests.security.test_mail_limits import STRONG

LIST = "someone@example.com,other@example.com"
NOT_ONE_ADDRESS = [
    LIST,
    "someone@example.com;other@example.com",
    "someone@example.com other@example.com",
    "Someone <someone@example.com>",
    '"some one"@example.com',
    "someone@[127.0.0.1]",
    "someone@localhost",
    "someone@example.com\r\nBcc: other@example.com",
    "some\x00one@example.com",
    "zoë@example.com",  # needs SMTPUTF8 (RFC 6531), which not every server has
    "deleted-0123@invalid",  # the tombstone of a deleted account
    "",
    "@example.com",
    "someone@",
]


@pytest.mark.parametrize("typed", NOT_ONE_ADDRESS)
def test_anything_but_one_address_is_refused(typed):
    with pytest.raises(InvalidEmail):
        normalize_email(typed)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        ("  ada@example.com\t", "ada@example.com"),
        ("ada@bücher.de", "ada@xn--bcher-kva.de"),  # IDNA A-label, RFC 5891
        ("ADA@XN--BCHER-KVA.DE", "ada@xn--bcher-kva.de"),
    ],
)
def test_one_address_has_one_form(typed, stored):
    assert normalize_email(typed) == stored


def outbox_recipients(app) -> list[str]:
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.payload).where(OutboxMessage.kind == "email")
        ).scalars()
        recipients = [payload["to"] for payload in rows]
        db.session.remove()
    return recipients


def account_count(app) -> int:
    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(Account)).scalar()
        db.session.remove()
    return n


@pytest.mark.parametrize("typed", [LIST, "Someone <someone@example.com>"])
def test_sign_up_with_an_address_list_is_refused(app, typed):
    web = Web(app)
    response = web.submit("/signup", email=typed, name="", password=STRONG)
    assert response.status_code == 400
    # Next to its field, tied to it for screen readers.
    assert (
        '<p class="field-error" id="email-error" role="alert">'
        "That is not an email address.</p>"
    ) in response.text
    assert 'aria-describedby="email-error"' in response.text
    assert outbox_recipients(app) == []
    assert account_count(app) == 0


def test_a_weak_password_at_sign_up_is_told_next_to_the_password(app):
    web = Web(app)
    response = web.submit("/signup", email="new@example.com", password="password1")
    assert response.status_code == 400
    assert 'id="password-error"' in response.text
    assert 'aria-describedby="password-error"' in response.text
    assert 'id="email-error"' not in response.text
    assert account_count(app) == 0


def test_sign_up_stores_the_normalised_address(app):
    web = Web(app)
    response = web.submit(
        "/signup", email=" New.Person@Example.COM ", name="", password=STRONG
    )
    assert response.status_code == 200
    assert outbox_recipients(app) == ["new.person@example.com"]


def test_email_change_to_an_address_list_is_refused(app, factories):
    person = factories.account()
    web = Web(app)
    sign_in(web, person)
    response = web.submit(
        "/account/email", new_email=LIST, current_password=person.password
    )
    assert response.status_code == 400
    assert "That is not an email address." in response.text
    assert outbox_recipients(app) == [person.email]  # the new-device notice only


def test_reset_for_an_address_list_sends_nothing(app, factories):
    person = factories.account()
    web = Web(app)
    # The owner's address first, an attacker's after: neither gets a link.
    response = web.submit(
        "/password/forgot", email=f"{person.email},attacker@example.com"
    )
    assert response.status_code == 200  # the same page as for any address
    assert outbox_recipients(app) == []


def test_sign_in_finds_the_account_however_the_address_is_typed(app, factories):
    person = factories.account()
    web = Web(app)
    person.email = "  " + person.email.upper() + " "
    assert submit_password(web, person).status_code == 302


def test_an_upstream_address_list_is_no_verified_address():
    provider = Provider(
        slug="up",
        name="Up",
        issuer="https://up.example",
        client_id="c",
        client_secret="s",
        scopes=("openid", "email"),
        trust_email_verified=True,
    )
    listed = upstream_identity(
        provider, {"sub": "1", "email": LIST, "email_verified": True}
    )
    assert listed.email is None
    typed = upstream_identity(
        provider, {"sub": "1", "email": "Ada@Example.COM", "email_verified": True}
    )
    assert typed.email == "ada@example.com"
    odd = upstream_identity(
        provider, {"sub": "1", "email": ["ada@example.com"], "email_verified": True}
    )
    assert odd.email is None


def _drop_password(app, account_id: str) -> None:
    """Make the account SSO-only, as one made by an upstream sign-in is."""
    with app.app_context():
        db.session.get(Account, account_id).password_hash = None
        db.session.commit()
        db.session.remove()


def test_an_sso_only_person_changes_the_address_after_a_fresh_sign_in(app, factories):
    person = factories.account()
    web = Web(app)
    sign_in(web, person)
    _drop_password(app, person.id)
    page = web.get("/account/email")
    assert page.status_code == 200
    assert 'name="current_password"' not in page.text  # there is none to type
    response = web.submit("/account/email", new_email="moved@example.com")
    assert response.status_code == 200, response.text[:300]
    assert "moved@example.com" in outbox_recipients(app)


def test_an_sso_only_person_with_an_old_sign_in_is_sent_to_confirm_first(
    app, factories
):
    person = factories.account()
    web = Web(app)
    sign_in(web, person)
    _drop_password(app, person.id)
    make_stale(app, person.id)
    page = web.get("/account/email")
    assert 'id="reauth-link"' in page.text
    assert "/account/confirm" in page.text
    response = web.submit("/account/email", new_email="moved@example.com")
    assert response.status_code == 401
    assert "moved@example.com" not in outbox_recipients(app)
