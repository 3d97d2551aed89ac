"""Every form that sends mail to an address someone types is limited, per
recipient and per client address, like the password reset: sign-up, email
change and "send the verification again" share one budget per recipient
(LATCHKEY_RATELIMIT_MAIL_ADDRESS) and one per client
(LATCHKEY_RATELIMIT_MAIL_IP). Only requests that queued mail count.

Before: 30 anonymous sign-ups naming an existing address sent its owner
30 mails in half a second.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage
from tests.accounts.helpers import Web, sign_in
from tests.flows.helpers import csrf_token
from tests.security.test_rate_limits import assert_html_429, new_ip, set_limits

__all__ = ["set_limits"]
STRONG = "sorrel harbour 93 lamp"


def mails_to(app, to: str) -> int:
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.payload).where(OutboxMessage.kind == "email")
        ).scalars()
        count = sum(1 for payload in rows if payload["to"] == to)
        db.session.remove()
    return count


def sign_up(app, email: str, ip: str | None = None, password: str = STRONG):
    web = Web(app, ip=ip or new_ip())
    return web.submit("/signup", email=email, name="", password=password)


def fresh_address() -> str:
    return f"new-{secrets.token_hex(4)}@example.com"


def test_sign_ups_naming_one_address_are_limited(app, factories, set_limits):
    set_limits(mail_address="3/hour")
    owner = factories.account()
    # Thirty strangers at once, each from their own address.
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: sign_up(app, owner.email), range(30)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 3 + [429] * 27
    assert_html_429(next(a for a in answers if a.status_code == 429))
    assert mails_to(app, owner.email) == 3
    # However it is spelled.
    assert sign_up(app, "  " + owner.email.upper()).status_code == 429


def test_sign_ups_from_one_client_are_limited(app, set_limits):
    set_limits(mail_ip="3/hour")
    ip = new_ip()
    addresses = [fresh_address() for _ in range(4)]
    statuses = [sign_up(app, a, ip=ip).status_code for a in addresses]
    assert statuses == [200, 200, 200, 429]
    assert [mails_to(app, a) for a in addresses] == [1, 1, 1, 0]
    # Another client is not held back.
    assert sign_up(app, fresh_address()).status_code == 200


def test_a_refused_form_costs_nothing(app, factories, set_limits):
    set_limits(mail_address="2/hour")
    owner = factories.account()
    # Weak passwords: the form comes back with its problems, no mail.
    for _ in range(4):
        assert sign_up(app, owner.email, password="short").status_code == 400
    assert [sign_up(app, owner.email).status_code for _ in range(3)] == [200, 200, 429]
    assert mails_to(app, owner.email) == 2


def change_email(web: Web, password: str, new_email: str):
    return web.submit("/account/email", new_email=new_email, current_password=password)


def test_email_changes_are_limited_per_recipient(app, factories, set_limits):
    set_limits(mail_address="2/hour")
    target = fresh_address()
    answers = []
    for _ in range(3):
        person = factories.account()
        web = Web(app)
        sign_in(web, person)
        answers.append(change_email(web, person.password, target).status_code)
    assert answers == [200, 200, 429]
    assert mails_to(app, target) == 2


def test_email_changes_are_limited_per_client(app, factories, set_limits):
    set_limits(mail_ip="2/hour")
    person = factories.account()
    web = Web(app)
    sign_in(web, person)
    answers = [
        change_email(web, person.password, fresh_address()).status_code
        for _ in range(3)
    ]
    assert answers == [200, 200, 429]


def test_resending_the_verification_is_limited(app, set_limits):
    set_limits(mail_address="3/hour")
    address = fresh_address()
    web = Web(app)
    assert web.submit("/signup", email=address, password=STRONG).status_code == 200
    assert web.submit(
        "/login", email=address, password=STRONG, next=""
    ).status_code in (302, 303)
    token = csrf_token(web.get("/account").text)
    before = mails_to(app, address)
    resent = [
        web.post("/account/verify-email", {"csrf_token": token}).status_code
        for _ in range(3)
    ]
    # One budget for the address: the sign-up spent one of three.
    assert resent == [200, 200, 429]
    assert mails_to(app, address) == before + 2


def test_the_forms_share_one_budget_per_recipient(app, factories, set_limits):
    set_limits(mail_address="2/hour")
    target = fresh_address()
    assert sign_up(app, target).status_code == 200
    person = factories.account()
    web = Web(app)
    sign_in(web, person)
    assert change_email(web, person.password, target).status_code == 200
    assert sign_up(app, target).status_code == 429
    assert change_email(web, person.password, target).status_code == 429
    assert mails_to(app, target) == 2
