"""An SSO-only account (created by a federated sign-in, no password) adds a
password through the reset flow, and can then sign in with it."""

from types import SimpleNamespace

from tests.federation.helpers import account_by_email, federate
from tests.flows.helpers import TIMEOUT, csrf_token, new_browser, sign_in
from tests.support.mail import deliver_mail, mailed_link

PASSWORD = "quartz heron lantern 77"


def test_sso_only_account_sets_a_password_through_reset(
    app, base_url, upstream, up_person, mail_dir
):
    with new_browser() as browser:
        federate(browser, base_url, upstream, up_person)
    assert account_by_email(app, up_person.email).password_hash is None

    with new_browser() as browser:
        page = browser.get(base_url + "/password/forgot", timeout=TIMEOUT)
        browser.post(
            base_url + "/password/forgot",
            data={"csrf_token": csrf_token(page.text), "email": up_person.email},
            timeout=TIMEOUT,
        )
        deliver_mail(app)
        link = mailed_link(mail_dir, up_person.email, "/password/reset/")
        form = browser.get(link, timeout=TIMEOUT)
        done = browser.post(
            link,
            data={"csrf_token": csrf_token(form.text), "password": PASSWORD},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert done.status_code == 302, done.text

    assert account_by_email(app, up_person.email).password_hash is not None
    sign_in(
        new_browser(),
        base_url,
        SimpleNamespace(email=up_person.email, password=PASSWORD),
    )
