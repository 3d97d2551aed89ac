"""A person turns on two-factor authentication in a real browser: the QR code
renders (inline SVG, allowed by the page's CSP), the secret shown as text
gives a code an authenticator app would compute, and the recovery codes
appear once."""

from urllib.parse import urlsplit

from tests.support.chromium import enter_totp_code, sign_in


def test_enrol_with_an_authenticator_code(live_server, factories, page):
    account = factories.account()
    csp_errors = []
    page.on(
        "console",
        lambda message: (
            csp_errors.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )

    sign_in(page, live_server.url, account)
    page.wait_for_selector("#account-email")

    assert "off" in page.inner_text("#two-factor")
    page.click("#two-factor a")
    page.wait_for_selector("#setup-link")
    page.click("#setup-link")

    page.wait_for_selector("#totp-secret")
    assert urlsplit(page.url).path == "/account/2fa/setup"
    qr = page.locator("#totp-qr svg")
    box = qr.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 100
    secret = page.inner_text("#totp-secret").replace(" ", "")

    enter_totp_code(page, secret)
    page.click("#enable")

    page.wait_for_selector("#recovery-codes")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    assert all(len(code) == 19 for code in codes)  # xxxx-xxxx-xxxx-xxxx
    page.click("#done")
    page.wait_for_selector("#totp-status")
    assert page.get_attribute("#totp-status", "data-enabled") == "true"
    assert codes[0] not in page.content()
    assert csp_errors == []
