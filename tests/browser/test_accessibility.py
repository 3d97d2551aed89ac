"""Every page people see, checked by axe-core in Chromium at desktop and
phone size: no serious or critical violation. With LATCHKEY_SCREENSHOTS set
to a folder, the same walk saves a screenshot of each page there (that is
how docs/screenshots/ is made)."""

from urllib.parse import urlencode

import pytest

from tests.browser.console_helpers import assert_accessible, authorize, axe_script
from tests.support.chromium import new_page, sign_in, submit_sign_in

VIEWPORTS = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 390, "height": 844},
}


@pytest.fixture(scope="module")
def axe_source() -> str:
    return axe_script()


def _check(page, axe_source: str, name: str, viewport: str) -> None:
    assert_accessible(page, axe_source, name, viewport)


def _signed_out_pages(base_url: str) -> list[tuple[str, str]]:
    return [
        ("sign-in", "/login"),
        ("sign-up", "/signup"),
        ("forgot-password", "/password/forgot"),
        ("expired-reset-link", "/password/reset/not-a-real-token"),
        ("not-found", "/no/such/page"),
        ("authorize-error", "/authorize?client_id=unknown&response_type=code"),
    ]


def _signed_in_pages(device_id: str, client_id: str) -> list[tuple[str, str]]:
    return [
        ("account", "/account"),
        ("devices", "/account/devices"),
        ("sign-out-device", f"/account/devices/{device_id}/sign-out"),
        ("sign-out-all", "/account/devices/sign-out-all"),
        ("apps", "/account/apps"),
        ("remove-access", f"/account/apps/{client_id}/remove"),
        ("security-history", "/account/security"),
        ("two-factor", "/account/2fa"),
        ("two-factor-setup", "/account/2fa/setup"),
        ("change-password", "/account/password"),
        ("change-email", "/account/email"),
        ("confirm-it-is-you", "/account/confirm?next=/account"),
        ("deactivate", "/account/deactivate"),
        ("delete", "/account/delete"),
        ("link-device", "/link"),
    ]


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_no_serious_accessibility_violation_on_any_page(
    live_server, factories, chromium, relying_party, axe_source, viewport
):
    # bypass_csp: our CSP rightly refuses inline scripts, axe is one.
    with new_page(chromium, viewport=VIEWPORTS[viewport], bypass_csp=True) as page:
        base = live_server.url
        for name, path in _signed_out_pages(base):
            page.goto(base + path)
            _check(page, axe_source, name, viewport)

        person = factories.account(name="Ada Lovelace")
        client = factories.client(
            redirect_uri=relying_party.url + "/cb", name="Photo album"
        )
        page.goto(base + "/login")
        submit_sign_in(page, person, password="not the password")
        _check(page, axe_source, "sign-in-error", viewport)
        sign_in(page, base, person)

        # The consent page, on the way to giving an app access.
        page.goto(
            base
            + "/authorize?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": client.client_id,
                    "redirect_uri": client.redirect_uri,
                    "scope": "openid profile email offline_access",
                    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    "code_challenge_method": "S256",
                }
            )
        )
        _check(page, axe_source, "consent", viewport)
        authorize(page, base, client, "openid profile email offline_access")

        page.goto(base + "/account/devices")
        device_id = (
            page.locator("#this-device")
            .locator("xpath=ancestor::li[1]")
            .get_attribute("data-device-id")
        )
        for name, path in _signed_in_pages(device_id, client.client_id):
            page.goto(base + path)
            _check(page, axe_source, name, viewport)
