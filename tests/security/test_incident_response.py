"""Incident response: `flask security force-password-reset` and
`flask security sign-out-everyone`, on 10,000 accounts inserted in bulk, and
what a forced account sees at the token endpoint."""

from __future__ import annotations

import json
import secrets
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, insert, select, update

from app.accounts import incident as incident_module
from app.accounts.incident import dedupe_key
from app.events.services import EventTag
from app.extensions import db
from app.logout.backchannel import FANOUT, LOGOUT, fan_out
from app.mail.services import open_body
from app.models import Account, FederatedIdentity, OutboxMessage, SecurityEvent
from app.models.base import utcnow
from app.oauth.server import PASSWORD_RESET_REQUIRED
from app.outbox.services import run_once
from tests.conftest import UPSTREAM_SLUG
from tests.flows.device_helpers import (
    link_device,
    poll,
    start_device_flow,
)
from tests.flows.helpers import (
    AuthRequest,
    assert_json_error,
    get_code,
    redeem_code,
    refresh,
    sign_in,
    tokens_for,
)

MANY = 10_000
EMAIL = "email"
FAKE_HASH = "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"


# -- helpers ------------------------------------------------------------------
def bulk_accounts(app, count: int, created_at=None, prefix="bulk") -> list[str]:
    """Insert ``count`` accounts with one executemany INSERT; their ids."""
    created_at = created_at or utcnow()
    tag = secrets.token_hex(3)
    rows = [
        {
            "id": f"{tag}{i:026d}",
            "email": f"{prefix}-{tag}-{i}@example.com",
            "name": f"Person {i}",
            "password_hash": FAKE_HASH,
            "status": "active",
            "generation": 0,
            "email_verified": True,
            "created_at": created_at,
            "must_reset_password": False,
        }
        for i in range(count)
    ]
    with app.app_context():
        db.session.execute(insert(Account), rows)
        db.session.commit()
        db.session.remove()
    return [row["id"] for row in rows]


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(args=list(args), input=input)

    return invoke


def summary(result) -> dict:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.stdout)


def scalar(app, statement):
    with app.app_context():
        value = db.session.execute(statement).scalar()
        db.session.remove()
    return value


def notice_count(app, incident: str) -> tuple[int, int]:
    """(notice rows, distinct dedupe keys) queued for ``incident``."""
    prefix = dedupe_key(incident, "")
    with app.app_context():
        rows, keys = db.session.execute(
            select(func.count(), func.count(OutboxMessage.dedupe_key.distinct())).where(
                OutboxMessage.kind == EMAIL,
                OutboxMessage.dedupe_key.startswith(prefix),
            )
        ).one()
        db.session.remove()
    return rows, keys


def event_count(app, tag: EventTag) -> int:
    return scalar(
        app,
        select(func.count()).select_from(SecurityEvent).where(SecurityEvent.tag == tag),
    )


def crash_on_notice(monkeypatch, n: int) -> None:
    """Make the ``n``th notice built from now on raise, as a crash would."""
    real_payload = incident_module.MailMerge.payload
    calls = {"n": 0}

    def failing_payload(self, to):
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("simulated crash")
        return real_payload(self, to)

    monkeypatch.setattr(incident_module.MailMerge, "payload", failing_payload)


@contextmanager
def counted_statements(app):
    """Count the SQL statements sent to the database inside the block."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


# -- force-password-reset on 10,000 accounts ------------------------------------
def test_force_reset_of_10000_accounts_is_resumable_and_mails_each_once(
    app, cli, monkeypatch
):
    ids = bulk_accounts(app, MANY)
    incident = "breach-" + secrets.token_hex(3)
    command = ("security", "force-password-reset", "--all", "--incident", incident)

    # An operator stops the run after three batches ...
    first = summary(cli(*command, "--max-batches", "3", "--json"))
    assert first["complete"] is False
    assert first["batches"] == 3
    assert first["accounts"] == first["marked"] == first["emails_queued"] == 1500

    # ... and the next run dies on the 200th notice of its second batch:
    # the first batch is committed, the second leaves nothing behind.
    crash_on_notice(monkeypatch, 700)
    assert isinstance(cli(*command).exception, RuntimeError)
    monkeypatch.undo()
    assert notice_count(app, incident) == (2000, 2000)
    marked = select(func.count()).where(Account.must_reset_password.is_(True))
    assert scalar(app, marked) == 2000

    # Run again to the end: only the remaining accounts are done.
    rest = summary(cli(*command, "--json"))
    assert rest["complete"] is True
    assert rest["accounts"] == rest["emails_queued"] == MANY - 2000
    assert scalar(app, marked) == MANY
    assert notice_count(app, incident) == (MANY, MANY)
    assert event_count(app, EventTag.PASSWORD_RESET_FORCED) == MANY

    # Each account has exactly its own notice.
    with app.app_context():
        keys = set(
            db.session.execute(
                select(OutboxMessage.dedupe_key).where(OutboxMessage.kind == EMAIL)
            ).scalars()
        )
        payload = db.session.execute(
            select(OutboxMessage.payload).where(
                OutboxMessage.dedupe_key == dedupe_key(incident, ids[42])
            )
        ).scalar_one()
        db.session.remove()
    assert keys == {dedupe_key(incident, i) for i in ids}
    assert payload["to"] == f"bulk-{ids[0][:6]}-42@example.com"
    assert payload["subject"].startswith("Please choose a new password")

    # A repeated run finds nothing to do and sends nothing.
    last = summary(cli(*command, "--json"))
    assert last["accounts"] == last["emails_queued"] == 0
    assert last["complete"] is True
    assert notice_count(app, incident) == (MANY, MANY)


def sso_only(app, ids: list[str]) -> None:
    """Make ``ids`` SSO-only: no password, one identity at the upstream."""
    with app.app_context():
        db.session.execute(
            update(Account).where(Account.id.in_(ids)).values(password_hash=None)
        )
        db.session.execute(
            insert(FederatedIdentity),
            [
                {"account_id": i, "provider": UPSTREAM_SLUG, "subject": f"s-{i}"}
                for i in ids
            ],
        )
        db.session.commit()
        db.session.remove()


def test_sign_out_of_password_and_sso_only_accounts_resumes_and_tells_each_once(
    app, cli, monkeypatch
):
    ids = bulk_accounts(app, 1000)
    sso = ids[::5]  # 200 SSO-only accounts, 30 in each batch of 150
    sso_only(app, sso)
    # A deactivated SSO-only account was signed out when it was deactivated,
    # and nobody reads its mail: the incident leaves it alone.
    [dormant] = bulk_accounts(app, 1, prefix="dormant")
    sso_only(app, [dormant])
    with app.app_context():
        db.session.execute(
            update(Account).where(Account.id == dormant).values(status="deactivated")
        )
        db.session.commit()
        db.session.remove()
    incident = "breach-" + secrets.token_hex(3)
    command = (
        "security", "force-password-reset", "--all", "--sign-out",
        "--incident", incident, "--batch-size", "150",
    )  # fmt: skip

    # Stopped after two batches, then a run that dies inside its second ...
    first = summary(cli(*command, "--max-batches", "2", "--json"))
    assert first["accounts"] == first["signed_out"] == first["emails_queued"] == 300
    assert first["sso_only_signed_out"] == 60
    assert first["marked"] == 240
    crash_on_notice(monkeypatch, 200)
    assert isinstance(cli(*command).exception, RuntimeError)
    monkeypatch.undo()
    assert notice_count(app, incident) == (450, 450)
    # ... and one to the end (two batches at a time on PostgreSQL), and one
    # more that finds nothing left.
    rest = summary(cli(*command, "--jobs", "2", "--json"))
    assert rest["complete"] is True
    assert rest["accounts"] == rest["signed_out"] == rest["emails_queued"] == 550
    assert rest["sso_only_signed_out"] == 110
    last = summary(cli(*command, "--json"))
    assert last["accounts"] == last["emails_queued"] == 0

    with app.app_context():
        generations = dict(
            db.session.execute(select(Account.id, Account.generation)).all()
        )
        forced = set(
            db.session.execute(
                select(Account.id).where(Account.must_reset_password.is_(True))
            ).scalars()
        )
        notices = {
            key.rsplit(":", 1)[1]: open_body(payload) | {"subject": payload["subject"]}
            for key, payload in db.session.execute(
                select(OutboxMessage.dedupe_key, OutboxMessage.payload).where(
                    OutboxMessage.kind == EMAIL
                )
            )
        }
        events = db.session.execute(
            select(SecurityEvent.account_id, SecurityEvent.tag)
        ).all()
        cut_offs = [
            pair
            for payload in db.session.execute(
                select(OutboxMessage.payload).where(OutboxMessage.kind == FANOUT)
            ).scalars()
            for pair in payload["accounts"]
        ]
        db.session.remove()

    # Every account signed out exactly once; the dormant one not at all.
    assert {i: generations[i] for i in ids} == dict.fromkeys(ids, 1)
    assert generations[dormant] == 0
    assert forced == set(ids) - set(sso)
    # One notice each, of the right kind.
    assert set(notices) == set(ids)
    emails = {i: f"bulk-{i[:6]}-{n}@example.com" for n, i in enumerate(ids)}
    for account_id in ids:
        notice = notices[account_id]
        # The merged address is each recipient's own, in both parts.
        assert emails[account_id] in notice["text"]
        assert f"<strong>{emails[account_id]}</strong>" in notice["html"]
        if account_id in sso:
            assert notice["subject"] == "We signed you out of every device"
            assert "sign in again through Upstream SSO" in notice["text"]
            assert "new password" not in notice["text"]
        else:
            assert notice["subject"].startswith("Please choose a new password")
            assert "signed your account out of every device" in notice["text"]
    # One event each, of the right kind; one cut-off each for relying parties.
    assert sorted(events) == sorted(
        (i, str(EventTag.SIGNED_OUT_FOR_INCIDENT if i in sso else
                EventTag.PASSWORD_RESET_FORCED))
        for i in ids
    )  # fmt: skip
    assert sorted(cut_offs) == sorted([i, 0] for i in ids)


def test_a_batch_leaves_out_accounts_another_run_did_meanwhile(app):
    ids = bulk_accounts(app, 6)
    sso_only(app, ids[:3])
    with app.test_request_context():
        # Two runs selected the same batch; the first one committed it ...
        [selected] = list(
            incident_module.pending_batches(
                incident_module.Selection(everyone=True), "race", 10, True
            )
        )
        first = incident_module.force_reset_batch(selected, "race", True)
        # ... and the second one's stale selection claims nothing.
        second = incident_module.force_reset_batch(selected, "race", True)
        db.session.remove()
    assert sorted(first.account_ids) == sorted(ids)
    assert second.account_ids == []
    assert second.emails_queued == second.signed_out == 0
    generations = select(Account.generation).where(Account.id.in_(ids))
    with app.app_context():
        assert set(db.session.execute(generations).scalars()) == {1}
        db.session.remove()
    assert notice_count(app, "race") == (6, 6)
    assert event_count(app, EventTag.SIGNED_OUT_FOR_INCIDENT) == 3


def test_a_second_run_of_an_incident_in_progress_is_refused(app, cli):
    ids = bulk_accounts(app, 4)
    sso_only(app, ids[:2])
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite serializes writers by itself")
        with incident_module.incident_lock("held"):
            result = cli(
                "security", "force-password-reset", "--all", "--sign-out",
                "--incident", "held",
            )  # fmt: skip
        db.session.remove()
    assert result.exit_code == 1
    assert "another run of incident held is in progress" in result.output
    assert notice_count(app, "held") == (0, 0)
    # Once the first run is over, the same command does the work.
    assert summary(
        cli("security", "force-password-reset", "--all", "--sign-out",
            "--incident", "held", "--json")
    )["accounts"] == 4  # fmt: skip


def test_a_batch_is_the_same_few_statements_whatever_its_size(app, cli):
    ids = bulk_accounts(app, 1100)
    sso_only(app, ids[::4])
    counts = []
    for size in (10, 1000):
        with counted_statements(app) as statements:
            result = summary(
                cli(
                    "security", "force-password-reset", "--all", "--sign-out",
                    "--incident", "sized", "--batch-size", str(size),
                    "--max-batches", "1", "--json",
                )
            )  # fmt: skip
        assert result["accounts"] == result["emails_queued"] == size
        assert 0 < result["sso_only_signed_out"] < size
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


def test_forced_sign_out_tells_relying_parties(
    app, cli, tmp_path, base_url, person, browser, factories
):
    rp = factories.client(backchannel_logout_uri="http://127.0.0.1:9/logout")
    tokens = tokens_for(browser, base_url, person, rp, scope="openid offline_access")
    assert force_reset(cli, tmp_path, person.email, "--sign-out")["signed_out"] == 1

    assert_json_error(
        refresh(base_url, rp, tokens["refresh_token"]), 400, "invalid_grant"
    )
    with app.app_context():
        run_once(handlers={FANOUT: fan_out})
        logouts = list(
            db.session.execute(
                select(OutboxMessage.payload).where(OutboxMessage.kind == LOGOUT)
            ).scalars()
        )
        db.session.remove()
    assert [(p["client_id"], p["sub"]) for p in logouts] == [(rp.client_id, person.id)]
    assert logouts[0].get("sid")


def test_force_reset_by_emails_file_with_sign_out(app, cli, tmp_path):
    ids = bulk_accounts(app, 6, prefix="listed")
    with app.app_context():
        emails = dict(
            db.session.execute(
                select(Account.id, Account.email).where(Account.id.in_(ids))
            ).all()
        )
        # An SSO-only account has no password to reset.
        db.session.execute(
            update(Account).where(Account.id == ids[3]).values(password_hash=None)
        )
        db.session.commit()
        db.session.remove()
    listed = tmp_path / "emails.txt"
    listed.write_text(
        "# accounts in the leaked dump\n"
        f"{emails[ids[0]].upper()}\n"
        f"  {emails[ids[1]]}  \n"
        f"{emails[ids[1]]}\n"
        f"{emails[ids[3]]}\n"
        "\n"
        "nobody@example.com\n"
        "not an email\n"
    )
    result = summary(
        cli(
            "security", "force-password-reset", "--emails-file", str(listed),
            "--sign-out", "--incident", "dump-2026", "--json",
        )
    )  # fmt: skip
    # The SSO-only account has no password to reset, but is signed out.
    assert result["accounts"] == result["signed_out"] == result["emails_queued"] == 3
    assert result["marked"] == 2
    assert result["sso_only_signed_out"] == 1
    assert result["unknown_emails"] == 1
    assert result["invalid_lines"] == ["not an email"]
    with app.app_context():
        rows = {
            a.id: a
            for a in db.session.execute(
                select(Account).where(Account.id.in_(ids))
            ).scalars()
        }
        fanouts = list(
            db.session.execute(
                select(OutboxMessage.payload).where(OutboxMessage.kind == FANOUT)
            ).scalars()
        )
        db.session.remove()
    assert [rows[i].must_reset_password for i in ids] == [
        True, True, False, False, False, False,
    ]  # fmt: skip
    assert [rows[i].generation for i in ids] == [1, 1, 0, 1, 0, 0]
    # One back-channel logout row for the batch, naming each cut generation.
    assert [p["cause"] for p in fanouts] == ["accounts"]
    assert sorted(fanouts[0]["accounts"]) == sorted(
        [i, 0] for i in (ids[0], ids[1], ids[3])
    )


def test_an_account_that_chose_its_new_password_is_not_forced_again(app, cli):
    ids = bulk_accounts(app, 3)
    command = ("security", "force-password-reset", "--all", "--json")
    assert summary(cli(*command, "--incident", "leak-1"))["accounts"] == 3
    with app.app_context():  # as setting a new password does
        db.session.execute(
            update(Account)
            .where(Account.id == ids[0])
            .values(must_reset_password=False)
        )
        db.session.commit()
        db.session.remove()
    assert summary(cli(*command, "--incident", "leak-1"))["accounts"] == 0
    # A new incident reaches it again, and only it (the others still wait).
    assert summary(cli(*command, "--incident", "leak-2"))["accounts"] == 1
    assert notice_count(app, "leak-1") == (3, 3)
    assert notice_count(app, "leak-2") == (1, 1)


def test_force_reset_since_a_date(app, cli):
    old = bulk_accounts(app, 3, created_at=datetime(2020, 5, 1, tzinfo=UTC))
    new = bulk_accounts(app, 4, created_at=datetime(2026, 3, 2, tzinfo=UTC))
    result = summary(
        cli("security", "force-password-reset", "--since", "2026-03-01", "--json")
    )
    assert result["incident"] == "reset-2026-03-01"
    assert result["accounts"] == 4
    with app.app_context():
        marked = set(
            db.session.execute(
                select(Account.id).where(Account.must_reset_password.is_(True))
            ).scalars()
        )
        db.session.remove()
    assert marked == set(new)
    assert not marked & set(old)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--all", "--since", "2026-01-01"],
        ["--all", "--incident", "no spaces please"],
    ],
)
def test_force_reset_refuses_unclear_requests(cli, args):
    result = cli("security", "force-password-reset", *args)
    assert result.exit_code == 2, result.output


# -- a forced account gets no tokens ---------------------------------------------
def force_reset(cli, tmp_path, email, *extra):
    listed = tmp_path / f"{secrets.token_hex(4)}.txt"
    listed.write_text(email + "\n")
    return summary(
        cli("security", "force-password-reset", "--emails-file", str(listed),
            "--json", *extra)
    )  # fmt: skip


def assert_reset_required(response):
    body = assert_json_error(response, 400, "invalid_grant")
    assert body["error_description"] == PASSWORD_RESET_REQUIRED


def test_forced_account_gets_no_tokens_until_it_chose_a_password(
    app, cli, tmp_path, base_url, person, rp, browser, tv
):
    tokens = tokens_for(browser, base_url, person, rp, scope="openid offline_access")
    started = start_device_flow(base_url, tv)
    link_device(browser, base_url, started["user_code"])  # approved before
    auth = AuthRequest.make(rp)
    code = get_code(browser, base_url, auth, person)  # issued before

    assert force_reset(cli, tmp_path, person.email)["marked"] == 1

    assert_reset_required(refresh(base_url, rp, tokens["refresh_token"]))
    assert_reset_required(redeem_code(base_url, auth, code))
    assert_reset_required(poll(base_url, tv, started["device_code"]))

    # The refusal spent nothing: once the password is new, refresh works.
    with app.app_context():
        db.session.execute(
            update(Account)
            .where(Account.id == person.id)
            .values(must_reset_password=False)
        )
        db.session.commit()
        db.session.remove()
    renewed = refresh(base_url, rp, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text


def test_forced_account_can_still_sign_in(cli, tmp_path, base_url, person, browser):
    force_reset(cli, tmp_path, person.email)
    response = sign_in(browser, base_url, person)
    assert "/account/password" in response.headers["Location"]


# -- sign-out-everyone --------------------------------------------------------------
def test_sign_out_everyone_is_a_constant_number_of_statements(app, cli):
    counts = []
    for total in (10, MANY):
        bulk_accounts(app, total - scalar(app, select(func.count(Account.id))))
        with counted_statements(app) as statements:
            result = summary(cli("security", "sign-out-everyone", "--yes", "--json"))
        assert result["accounts_signed_out"] == total
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 5, counts
    assert scalar(app, select(func.min(Account.generation))) == 1  # the 10,000
    assert scalar(app, select(func.max(Account.generation))) == 2  # the first 10
    assert event_count(app, EventTag.EVERYONE_SIGNED_OUT) == 2
    fanouts = select(func.count()).where(OutboxMessage.kind == FANOUT)
    assert scalar(app, fanouts) == 2


def test_sign_out_everyone_asks_first(app, cli):
    ids = bulk_accounts(app, 3)
    result = cli("security", "sign-out-everyone", input="n\n")
    assert result.exit_code == 1
    assert "Sign every account out" in result.output
    generation = select(func.max(Account.generation)).where(Account.id.in_(ids))
    assert scalar(app, generation) == 0
    result = cli("security", "sign-out-everyone", input="y\n")
    assert result.exit_code == 0, result.output
    assert scalar(app, generation) == 1


def test_sign_out_everyone_cuts_off_grants_and_tells_relying_parties(
    app, cli, base_url, person, browser, factories
):
    rp = factories.client(backchannel_logout_uri="http://127.0.0.1:9/logout")
    tokens = tokens_for(browser, base_url, person, rp, scope="openid offline_access")
    summary(cli("security", "sign-out-everyone", "--yes", "--json"))

    response = refresh(base_url, rp, tokens["refresh_token"])
    assert_json_error(response, 400, "invalid_grant")
    # The one fan-out row becomes a logout token for the relying party.
    with app.app_context():
        run_once(handlers={FANOUT: fan_out})
        logouts = list(
            db.session.execute(
                select(OutboxMessage.payload).where(OutboxMessage.kind == LOGOUT)
            ).scalars()
        )
        db.session.remove()
    assert [(p["client_id"], p["sub"]) for p in logouts] == [(rp.client_id, person.id)]
    assert logouts[0].get("sid")
