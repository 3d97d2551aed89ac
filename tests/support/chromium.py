"""The one headless Chromium of a run and the steps a person takes in it,
shared by tests/browser and tests/conformance (a pytest plugin that
tests/conftest.py loads).

Pages are found by their form fields (#email, #password, #approve ...), so
the same steps serve Latchkey's pages wherever a flow leads to them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyotp
import pytest

from tests.accounts.helpers import steady_step

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]
TIMEOUT_MS = 10_000
SIGN_IN_SUBMIT = "form:has(#password) button[type=submit]"


# -- the browser ---------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium shared by every browser test in the run."""
    if not CHROMIUM.exists():
        # Never a skip: a suite that passes without its browser tests proves
        # nothing about the pages (make test installs chromium first).
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextmanager
def new_page(chromium, **context_options) -> Iterator:
    """A page in a context of its own (no cookies shared with any other),
    closed afterwards. ``context_options`` go to Playwright's new_context
    (e.g. ``viewport``, ``bypass_csp`` for axe's inline script)."""
    context = chromium.new_context(**context_options)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(chromium):
    """A fresh page in its own context: no cookies carried between tests."""
    with new_page(chromium) as fresh:
        yield fresh


# -- what a person does --------------------------------------------------------
def submit_sign_in(page, account, password: str | None = None) -> None:
    """Fill in and send the sign-in form now on ``page`` (Latchkey's own or
    an upstream Latchkey's), with ``password`` instead of the account's
    when given. Does not wait for the answer."""
    page.fill("#email", account.email)
    page.fill("#password", account.password if password is None else password)
    page.click(SIGN_IN_SUBMIT)


def sign_in(page, base_url: str, account) -> None:
    """Sign in at /login in ``page``; ends on the account page."""
    page.goto(base_url + "/login")
    submit_sign_in(page, account)
    page.wait_for_url(base_url + "/account")


def answer_consent(page, approve: bool = True) -> None:
    """Press Allow (or Deny) on the consent page now on ``page``."""
    page.click("#approve" if approve else "#deny")


def enter_totp_code(page, secret: str, field: str = "#code") -> None:
    """Type the current TOTP code (RFC 6238) of ``secret`` into ``field``,
    as an authenticator app would show it, once enough of the time step
    is left for the page to submit it within the step."""
    page.fill(field, pyotp.TOTP(secret).generate_otp(steady_step(min_left=5.0)))
