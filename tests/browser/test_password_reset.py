"""A person resets a forgotten password in a real browser from the link that
was emailed to them, with "Sign out connected devices" left ticked, and the
other device's tokens stop working."""

import email
import re
from email.policy import default as default_policy

from app.extensions import db
from app.outbox.services import run_once
from tests.flows.helpers import TIMEOUT, new_browser, refresh, tokens_for
from tests.support.chromium import submit_sign_in

NEW_PASSWORD = "lantern orchard pebble 1987"


def _reset_link(mail_dir, address: str) -> str:
    for path in sorted(mail_dir.glob("*.eml"), reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        if message["To"] != address:
            continue
        text = message.get_body(("plain",)).get_content()
        found = re.search(r"(https?://\S+/password/reset/\S+)", text)
        if found:
            return found.group(1)
    raise AssertionError(f"no reset link mailed to {address}")


def _deliver_mail(app):
    with app.app_context():
        run_once()
        db.session.remove()


def test_reset_from_the_emailed_link_signs_out_other_devices(
    live_server, factories, app, mail_dir, page
):
    account = factories.account()
    rp = factories.client()
    other_device = new_browser()
    tokens = tokens_for(
        other_device, live_server.url, account, rp, scope="openid offline_access"
    )

    page.goto(f"{live_server.url}/login")
    page.click("text=Forgot your password?")
    page.fill("#email", account.email)
    page.click("button[type=submit]")
    page.wait_for_selector("#sent")

    _deliver_mail(app)
    page.goto(_reset_link(mail_dir, account.email))
    assert page.is_checked("#sign_out_everywhere")  # ticked by default
    page.fill("#password", NEW_PASSWORD)
    page.click("#save-password")
    page.wait_for_url(re.compile(r"/login"))

    assert refresh(live_server.url, rp, tokens["refresh_token"]).json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token is invalid.",
    }
    signed_out = other_device.get(
        live_server.url + "/account", timeout=TIMEOUT, allow_redirects=False
    )
    assert signed_out.status_code == 302

    submit_sign_in(page, account, password=NEW_PASSWORD)
    page.wait_for_selector("#account-email")
    assert page.inner_text("#account-email") == account.email
