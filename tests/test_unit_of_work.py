"""One unit of work per request and per command (app/unit_of_work.py): a
view or command that raises leaves nothing written, an answer (whatever its
status) keeps what it wrote, a commit that fails is a 500 and not a false
success, and ``app/`` commits in exactly two places."""

import ast
import os
from pathlib import Path

import pytest
from sqlalchemy import select, update
from werkzeug.exceptions import BadRequest

from app import create_app
from app.extensions import db
from app.models import Account, Grant, SecurityEvent
from tests.accounts.helpers import (
    Web,
    account_row,
    authorize,
    event_tags,
    refresh,
    sign_in,
)
from tests.flows.helpers import csrf_token

APP = Path(__file__).resolve().parent.parent / "app"


def test_app_commits_in_exactly_two_places():
    # The rule as issue 10 states it: `grep -rn "commit()" app/` finds the
    # named early-commit helper and the end of the unit of work, nothing else.
    # The SQLite driver subclass passes the driver's own commit() through
    # (to leave the writer queue after it); it decides nothing.
    found = [
        (path.relative_to(APP.parent).as_posix(), line.strip())
        for path in sorted(APP.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
        for line in path.read_text(errors="replace").splitlines()
        if "commit()" in line
    ]
    passed_through = ("app/sqlite_writers.py", "super().commit()")
    assert [place for place in found if place != passed_through] == [
        ("app/unit_of_work.py", "db.session.commit()")
    ] * 2
    tree = ast.parse((APP / "unit_of_work.py").read_text())
    committing = sorted(
        function.name
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        and any(
            isinstance(node, ast.Attribute) and node.attr == "commit"
            for node in ast.walk(function)
        )
    )
    assert committing == ["_end_unit_of_work", "commit_early"]


@pytest.fixture
def person(factories):
    return factories.account(name="Before")


@pytest.mark.parametrize("error", [RuntimeError("boom"), BadRequest("refused")])
def test_a_view_that_raises_after_writing_leaves_nothing_written(
    app, person, monkeypatch, error
):
    web = Web(app)
    sign_in(web, person)
    page = web.get("/account")
    before = event_tags(app, person.id)

    def fail(*args, **kwargs):
        raise error

    # The profile view sets the name, then records its event: raise there.
    monkeypatch.setattr("app.web.accounts.views.record_request_event", fail)
    answer = web.post(
        "/account/profile", {"csrf_token": csrf_token(page.text), "name": "After"}
    )

    assert answer.status_code == (500 if isinstance(error, RuntimeError) else 400)
    assert account_row(app, person.id).name == "Before"
    assert event_tags(app, person.id) == before


def test_an_oauth_error_answer_keeps_what_it_wrote(app, person, factories):
    # RFC 9700 §4.14.2: a used refresh token presented again is answered
    # invalid_grant (400) and revokes the grant; the revocation must persist.
    client = factories.client(first_party=True)
    web = Web(app)
    first = authorize(web, client, person)["refresh_token"]
    assert refresh(web, client, first).status_code == 200

    reused = refresh(web, client, first)

    assert reused.status_code == 400
    assert reused.get_json()["error"] == "invalid_grant"
    with app.app_context():
        grants = db.session.execute(
            select(Grant.revoked_at).where(Grant.account_id == person.id)
        ).all()
        db.session.remove()
    assert len(grants) == 1
    assert grants[0].revoked_at is not None
    assert "oauth:refresh:reused" in event_tags(app, person.id)


def test_a_commit_that_fails_is_answered_500_not_200(base_env, factories, person):
    fresh = create_app(dict(base_env))
    # As in production: an error is answered, not raised into the test.
    fresh.config["PROPAGATE_EXCEPTIONS"] = False

    @fresh.route("/_test/duplicate-account")
    def duplicate_account():
        # Unique email: the INSERT fails only at the request's commit.
        db.session.add(Account(email=person.email, name="Copy"))
        return "saved"

    answer = fresh.test_client().get("/_test/duplicate-account")

    assert answer.status_code == 500
    assert "saved" not in answer.text
    with fresh.app_context():
        count = db.session.execute(
            select(Account.id).where(Account.email == person.email)
        ).all()
        db.session.remove()
    assert len(count) == 1


def test_a_read_in_autocommit_skips_the_commit_unless_it_wrote(
    base_env, person, monkeypatch
):
    """without_transaction() (introspection, client credentials): a request
    that only read ends with no commit; one that then added an ORM object
    still has it committed."""
    from app.extensions import without_transaction

    fresh = create_app(dict(base_env))
    commits = []
    real_commit = db.session.commit
    monkeypatch.setattr(
        db.session, "commit", lambda: commits.append(1) or real_commit()
    )

    @fresh.route("/_test/read-only")
    def read_only():
        without_transaction()
        return db.session.get(Account, person.id).name

    @fresh.route("/_test/read-then-add")
    def read_then_add():
        without_transaction()
        db.session.get(Account, person.id)
        db.session.add(Account(email="added-" + person.email, name="Added"))
        return "added"

    @fresh.route("/_test/read-then-update")
    def read_then_update():
        without_transaction()
        db.session.get(Account, person.id)
        # A Core statement leaves no ORM object pending: on SQLite only the
        # transaction sqlite3 opened for it says there is work to commit.
        db.session.execute(
            update(Account).where(Account.id == person.id).values(name="Updated")
        )
        return "updated"

    assert fresh.test_client().get("/_test/read-only").text == "Before"
    assert commits == []
    assert fresh.test_client().get("/_test/read-then-add").text == "added"
    assert commits == [1]
    assert fresh.test_client().get("/_test/read-then-update").text == "updated"
    with fresh.app_context():
        added = db.session.execute(
            select(Account.id).where(Account.email == "added-" + person.email)
        ).all()
        name = db.session.get(Account, person.id).name
        db.session.remove()
    assert len(added) == 1
    assert name == "Updated"


@pytest.mark.skipif(
    os.environ.get("LATCHKEY_TEST_DB", "sqlite") != "postgresql",
    reason="PostgreSQL refuses a NUL byte in text; SQLite stores it",
)
def test_a_value_refused_at_commit_is_a_400_as_in_the_view(base_env, person):
    fresh = create_app(dict(base_env))

    @fresh.route("/_test/unstorable-name")
    def unstorable_name():
        # Nothing reads after the write: it reaches the database at commit.
        db.session.get(Account, person.id).name = "Ada\x00"
        return "saved"

    answer = fresh.test_client().get("/_test/unstorable-name")

    assert answer.status_code == 400
    assert "saved" not in answer.text
    with fresh.app_context():
        assert db.session.get(Account, person.id).name == "Before"
        db.session.remove()


def test_a_command_that_fails_midway_commits_nothing(app, person, monkeypatch):
    generation = account_row(app, person.id).generation
    events = _all_events(app)

    def fail(*args, **kwargs):
        raise RuntimeError("the event could not be recorded")

    # sign-out-everyone bumps every generation, then records its event.
    monkeypatch.setattr("app.cli.security.record_event", fail)
    result = app.test_cli_runner().invoke(
        args=["security", "sign-out-everyone", "--yes"]
    )

    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    assert account_row(app, person.id).generation == generation
    assert _all_events(app) == events


def _all_events(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(
            select(SecurityEvent.id, SecurityEvent.tag).order_by(SecurityEvent.id)
        ).all()
        db.session.remove()
    return [tuple(row) for row in rows]
