"""The upstream provider's JWTs with malformed JOSE Headers and shapes (see
tests/untrusted_jwts.py): an ID token in the token response and a logout
token at the back-channel logout endpoint are refused with a 400, never a
500, and nothing is created or ended."""

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import BrowserSession
from tests.federation.helpers import (
    SLUG,
    assert_failure_page,
    counts,
    events,
    federate,
    sign_in_upstream,
)
from tests.federation.test_federation_bad_input import InProcessTrip, alter_token
from tests.flows.helpers import TIMEOUT, new_browser
from tests.untrusted_jwts import bad_tokens, plausible_claims

__all__ = ["alter_token"]  # the fixture, shared with the bad-input tests
EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _upstream_kid(upstream) -> str:
    keys = requests.get(upstream.url + "/jwks.json", timeout=TIMEOUT).json()["keys"]
    return next(k["kid"] for k in keys if k["alg"] == "ES256")


class SignedInTrip(InProcessTrip):
    """In-process downstream; one browser stays signed in at the upstream,
    so each trip costs no upstream password check."""

    def __init__(self, app, upstream, up_person):
        super().__init__(app, upstream, up_person)
        self.browser = new_browser()

    def callback_path(self) -> str:
        start = self.client.get(f"/federation/{SLUG}/start")
        assert start.status_code == 302, start.text
        url = sign_in_upstream(
            self.browser, self.upstream, start.headers["Location"], self.up_person
        )
        return url[url.index("/federation/") :]


def test_malformed_upstream_id_tokens(app, upstream, up_person, alter_token):
    kid = _upstream_kid(upstream)
    claims = plausible_claims(upstream.url, upstream.client_id)
    variants = bad_tokens(kid, "JWT", claims)
    current = {}

    def rewrite(token):
        token["id_token"] = current["token"]
        return token

    alter_token(rewrite)
    before = counts(app)
    trip = SignedInTrip(app, upstream, up_person)
    for name, token in variants.items():
        current["token"] = token
        response = trip.run()
        assert "Traceback" not in response.text, name
        assert_failure_page(response, 400, "Sign-in was not completed")
        assert trip.session_cookie() is None, name
    assert counts(app) == before
    assert events(app) == []


def test_malformed_logout_tokens(app, base_url, upstream, up_person):
    kid = _upstream_kid(upstream)
    with new_browser() as browser:
        federate(browser, base_url, upstream, up_person)
        with app.app_context():
            session = db.session.execute(select(BrowserSession)).scalar_one()
            sid = session.upstream_sid
            db.session.remove()
        claims = plausible_claims(
            upstream.url, upstream.client_id, sid=sid, events={EVENT: {}}
        )
        for name, token in bad_tokens(kid, "logout+jwt", claims).items():
            response = requests.post(
                f"{base_url}/federation/{SLUG}/backchannel-logout",
                data={"logout_token": token},
                timeout=TIMEOUT,
            )
            assert response.status_code == 400, (name, response.text)
            assert response.json()["error"] == "invalid_request", name
        # Nothing was ended.
        page = browser.get(
            base_url + "/account", allow_redirects=False, timeout=TIMEOUT
        )
        assert page.status_code == 200
