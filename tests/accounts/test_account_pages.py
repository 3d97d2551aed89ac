"""The smaller account pages and their bad inputs: renaming a device, the
IdP's own sign-out, resending a verification link, and the health check."""

import re

import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, Device, OutboxMessage
from tests.flows.device_helpers import devices_page, is_signed_in
from tests.flows.helpers import TIMEOUT, csrf_token, new_browser, sign_in


def _device_ids(browser, base_url) -> list[str]:
    return re.findall(r'data-device-id="(\w+)"', devices_page(browser, base_url).text)


def _device_name(app, device_id) -> str:
    with app.app_context():
        name = db.session.get(Device, device_id).name
        db.session.remove()
    return name


def _rename(browser, base_url, device_id, name, with_csrf=True):
    data = {"name": name}
    if with_csrf:
        data["csrf_token"] = csrf_token(devices_page(browser, base_url).text)
    return browser.post(
        f"{base_url}/account/devices/{device_id}/rename",
        data=data,
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def test_rename_a_device(app, live_server, factories):
    browser = new_browser()
    sign_in(browser, live_server.url, factories.account())
    (device_id,) = _device_ids(browser, live_server.url)
    response = _rename(browser, live_server.url, device_id, "  Kitchen laptop ")
    assert response.status_code == 302
    assert _device_name(app, device_id) == "Kitchen laptop"


def test_rename_refuses_bad_input_and_foreign_devices(app, live_server, factories):
    mine, theirs = new_browser(), new_browser()
    sign_in(mine, live_server.url, factories.account())
    sign_in(theirs, live_server.url, factories.account())
    (my_device,) = _device_ids(mine, live_server.url)
    (their_device,) = _device_ids(theirs, live_server.url)
    before = _device_name(app, their_device)

    assert _rename(mine, live_server.url, their_device, "Mine now").status_code == 302
    assert _device_name(app, their_device) == before  # not my device: nothing
    assert _rename(mine, live_server.url, my_device, "").status_code == 400
    assert _rename(mine, live_server.url, my_device, "x" * 201).status_code == 400
    no_csrf = _rename(mine, live_server.url, my_device, "Sneaky", with_csrf=False)
    assert no_csrf.status_code == 400
    assert _device_name(app, my_device) != "Sneaky"


def test_sign_out_of_latchkey(live_server, factories):
    browser = new_browser()
    sign_in(browser, live_server.url, factories.account())
    page = browser.get(live_server.url + "/logout", timeout=TIMEOUT)
    assert page.status_code == 200

    forged = browser.post(live_server.url + "/logout", timeout=TIMEOUT)
    assert forged.status_code == 400
    assert is_signed_in(browser, live_server.url)

    done = browser.post(
        live_server.url + "/logout",
        data={"csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert done.status_code == 302
    assert not is_signed_in(browser, live_server.url)


def _queued_mail(app, to) -> int:
    with app.app_context():
        count = db.session.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "email")
            .where(OutboxMessage.payload["to"].as_string() == to)
        ).scalar_one()
        db.session.remove()
    return count


def test_resend_the_verification_link(app, live_server, factories):
    person = factories.account()
    with app.app_context():
        db.session.get(Account, person.id).email_verified = False
        db.session.commit()
        db.session.remove()
    browser = new_browser()
    sign_in(browser, live_server.url, person)
    before = _queued_mail(app, person.email)

    forged = browser.post(live_server.url + "/account/verify-email", timeout=TIMEOUT)
    assert forged.status_code == 400
    assert _queued_mail(app, person.email) == before

    page = browser.get(live_server.url + "/account", timeout=TIMEOUT)
    sent = browser.post(
        live_server.url + "/account/verify-email",
        data={"csrf_token": csrf_token(page.text)},
        timeout=TIMEOUT,
    )
    assert sent.status_code == 200
    assert _queued_mail(app, person.email) == before + 1


def test_health_check(live_server):
    response = requests.get(live_server.url + "/healthz", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
