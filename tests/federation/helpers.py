"""Helpers for the federation tests: a person's browser (a requests.Session)
walks from the downstream Latchkey to the upstream one and back."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, FederatedIdentity, SecurityEvent
from tests.flows.helpers import TIMEOUT, walk_authorize

SLUG = "upstream"
PROVIDER_NAME = "Upstream SSO"


@dataclass
class Trip:
    """A browser's round trip through the upstream provider."""

    start: requests.Response  # the downstream's answer to /federation/.../start
    callback_url: str  # where the upstream sent the browser back to
    response: requests.Response  # the downstream's answer to that callback

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlparse(self.callback_url).query).items()}


def upstream_redirect(
    browser: requests.Session, base_url: str, **params
) -> requests.Response:
    """GET the downstream's start URL; asserts it redirects to the upstream."""
    response = browser.get(
        f"{base_url}/federation/{SLUG}/start",
        params=params,
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 302, (response.status_code, response.text[:300])
    return response


def sign_in_upstream(
    browser: requests.Session, upstream, location: str, up_account
) -> str:
    """Follow the upstream's /authorize (login form, no consent: the
    downstream is a first-party client there); return the URL the upstream
    redirects back to."""
    assert location.startswith(upstream.url + "/authorize?"), location
    walk = walk_authorize(browser, upstream.url, location, account=up_account)
    assert "consent" not in walk.pages
    return walk.location


def federate(
    browser: requests.Session, base_url: str, upstream, up_account, **params
) -> Trip:
    """Start at the downstream, sign in upstream, deliver the callback.

    Redirects after the callback are not followed.
    """
    start = upstream_redirect(browser, base_url, **params)
    callback_url = sign_in_upstream(
        browser, upstream, start.headers["Location"], up_account
    )
    assert callback_url.startswith(f"{base_url}/federation/{SLUG}/callback?")
    response = browser.get(callback_url, allow_redirects=False, timeout=TIMEOUT)
    assert "Traceback" not in response.text
    return Trip(start, callback_url, response)


def follow(browser: requests.Session, response: requests.Response):
    """GET the redirect target of ``response``."""
    assert response.is_redirect, (response.status_code, response.text[:300])
    target = urljoin(response.url, response.headers["Location"])
    return browser.get(target, allow_redirects=False, timeout=TIMEOUT)


def assert_failure_page(response, status: int, *phrases: str) -> None:
    """A friendly HTML error page with ``status``: no redirect, no traceback."""
    text = response.text  # requests' and Flask's test responses both have it
    assert "Traceback" not in text
    assert response.status_code == status, (response.status_code, text[:500])
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'role="alert"' in text
    for phrase in phrases:
        assert phrase in text, text


# -- database ----------------------------------------------------------------
def counts(app) -> tuple[int, int]:
    """(accounts, federated identities) in the downstream database."""
    with app.app_context():
        accounts = db.session.execute(select(func.count(Account.id))).scalar_one()
        links = db.session.execute(
            select(func.count(FederatedIdentity.id))
        ).scalar_one()
        db.session.remove()
    return accounts, links


def identities(app, account_id: str) -> list[tuple[str, str]]:
    """(provider, subject) pairs linked to ``account_id``."""
    with app.app_context():
        rows = db.session.execute(
            select(FederatedIdentity.provider, FederatedIdentity.subject)
            .where(FederatedIdentity.account_id == account_id)
            .order_by(FederatedIdentity.id)
        ).all()
        db.session.remove()
    return [tuple(row) for row in rows]


def events(app, tag: str | None = None) -> list[dict]:
    """Security events (optionally of one tag), oldest first, as dicts."""
    with app.app_context():
        query = select(SecurityEvent).order_by(SecurityEvent.id)
        if tag:
            query = query.where(SecurityEvent.tag == tag)
        rows = [
            {
                "tag": e.tag,
                "account_id": e.account_id,
                "device_id": e.device_id,
                "details": dict(e.details or {}),
            }
            for e in db.session.execute(query).scalars()
        ]
        db.session.remove()
    return rows


def account_by_email(app, email: str) -> Account | None:
    with app.app_context():
        account = db.session.execute(
            select(Account).where(Account.email == email)
        ).scalar_one_or_none()
        if account is not None:
            db.session.expunge(account)
        db.session.remove()
    return account
