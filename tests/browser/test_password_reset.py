"""A person resets a forgotten password in a real browser from the link that
was emailed to them, with "Sign out connected devices" left ticked, and the
other device's tokens stop working."""

import re

from tests.flows.helpers import TIMEOUT, new_browser, refresh, tokens_for
from tests.support.chromium import submit_sign_in
from tests.support.mail import deliver_mail, mailed_link

NEW_PASSWORD = "lantern orchard pebble 1987"


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

    deliver_mail(app)
    page.goto(mailed_link(mail_dir, account.email, "/password/reset/"))
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
