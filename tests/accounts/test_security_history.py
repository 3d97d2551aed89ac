"""The security history page: the account's own events of the last 90 days,
newest first, in plain words, with time, device and address."""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import urlsplit

import pytest

from app.events.services import EventTag, Who, record_event
from app.extensions import db
from app.models.base import utcnow
from tests.accounts.helpers import (
    Web,
    enrol,
    sign_in,
    steady_step,
    submit_password,
)

_ROW = re.compile(
    r'<tr class="event" data-tag="([^"]+)"[^>]*>\s*'
    r'<td class="event-label">([^<]*)</td>\s*'
    r'<td class="event-time"><time datetime="[^"]+">([^<]*)</time></td>\s*'
    r'<td class="event-device">([^<]*)</td>\s*'
    r'<td class="event-ip">([^<]*)</td>'
)


def _rows(html: str) -> list[tuple[str, str, str, str, str]]:
    return [tuple(unescape(part) for part in row) for row in _ROW.findall(html)]


@pytest.fixture
def person(factories):
    return factories.account()


def _add_event(app, account_id, tag, days_ago, **details):
    with app.app_context():
        event = record_event(tag, account_id, Who("192.0.2.7"), **details)
        event.created_at = utcnow() - timedelta(days=days_ago)
        db.session.commit()
        db.session.remove()


def test_history_shows_recent_events_newest_first(app, factories, person):
    stranger = factories.account()
    _add_event(app, person.id, EventTag.PASSWORD_CHANGED, days_ago=100)
    _add_event(app, person.id, EventTag.EMAIL_VERIFIED, days_ago=89)
    _add_event(app, stranger.id, EventTag.PASSWORD_CHANGED, days_ago=1)

    attacker = Web(app)
    assert submit_password(attacker, person, password="guess").status_code == 401
    web = Web(app)
    sign_in(web, person)
    enrol(web, steady_step())

    page = web.get("/account/security")
    assert page.status_code == 200
    rows = _rows(page.text)
    labels = [label for _, label, _, _, _ in rows]
    assert labels == [
        "Two-factor authentication turned on",
        "Signed in",
        "Signed in from a new device",
        "Failed sign-in: wrong password",
        "Email address verified",
    ]
    # Older than 90 days, or someone else's: not shown.
    assert "Password changed" not in page.text

    enabled, signed_in, new_device, failed, verified = rows
    assert enabled[0] == EventTag.TOTP_ENABLED
    for row in (enabled, signed_in, new_device):
        assert row[3] == "Firefox on Linux"  # the device, by name
        assert row[4] == web.ip
        assert row[2].endswith(" UTC")
    assert failed[4] == attacker.ip
    assert verified[4] == "192.0.2.7"


def test_history_names_what_an_operator_did(app, person):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "deactivate", person.email]).exit_code == 0
    assert runner.invoke(args=["users", "reactivate", person.email]).exit_code == 0
    web = Web(app)
    sign_in(web, person)
    labels = [row[1] for row in _rows(web.get("/account/security").text)]
    assert labels[-2:] == [
        "Account reactivated by an administrator",
        "Account deactivated by an administrator",
    ]


def test_history_needs_a_sign_in(app):
    response = Web(app).get("/account/security")
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"


def test_account_page_links_to_security_pages(app, person):
    web = Web(app)
    sign_in(web, person)
    home = web.get("/account").text
    assert 'href="/account/security"' in home
    assert 'href="/account/2fa"' in home
    assert 'href="/account/deactivate"' in home
    assert "Two-factor authentication: <strong>off</strong>" in home


def test_every_event_tag_has_a_plain_words_label_on_the_page(app, person):
    """Each tag of the EventTag enum shows on the history page in words
    from the labels table, never as the raw tag."""
    from app.events.history import LABELS

    assert set(EventTag) <= set(LABELS), set(EventTag) - set(LABELS)
    for days_ago, tag in enumerate(EventTag):
        _add_event(app, person.id, tag, days_ago=days_ago / 1000, provider="upstream")
    web = Web(app)
    sign_in(web, person)
    rows = {row[0]: row[1] for row in _rows(web.get("/account/security").text)}
    for tag in EventTag:
        label = rows[str(tag)]
        assert label, tag
        assert label != "Other security change", (tag, label)
        # No machine words: no area:subject:action tag, no provider slug.
        assert not re.search(r"\w+:\w+", label), (tag, label)
        assert not re.search(r"\bupstream\b", label), (tag, label)


def test_an_unknown_tag_is_not_shown_raw(app, person):
    with app.app_context():
        from app.models import SecurityEvent

        db.session.add(SecurityEvent(account_id=person.id, tag="x:new:thing"))
        db.session.commit()
        db.session.remove()
    web = Web(app)
    sign_in(web, person)
    page = web.get("/account/security").text
    assert "x:new:thing</td>" not in page
    assert "Other security change" in page
