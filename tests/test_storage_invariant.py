"""DESIGN.md lesson 1: a copy of the database lets nobody in.

After a full run of the protocol against a live server, every value of every
column of every table is read back as text, and none of the secrets handed
out along the way may appear in it; their SHA-256 hashes must.
"""

import base64
import email
import json
import re
from email.policy import default as default_policy

import sqlalchemy as sa

from app.accounts.links import issue_link
from app.extensions import db
from app.models import Account, LinkPurpose
from app.oauth.refresh import SUCCESSOR_KEY_PURPOSE
from app.outbox.services import run_once
from app.security.crypto import derive_key
from tests.accounts.helpers import enable_totp_directly
from tests.flows.helpers import (
    TIMEOUT,
    AuthRequest,
    csrf_token,
    get_code,
    new_browser,
    redeem_code,
    refresh,
    sha256_hex,
    sign_in,
    token_request,
)


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        return value.decode("latin-1")  # every byte kept, ASCII secrets visible
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def dump_database(app) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every cell in the database."""
    cells = []
    with app.app_context():
        inspector = sa.inspect(db.engine)
        with db.engine.connect() as conn:
            for table_name in inspector.get_table_names():
                names = [c["name"] for c in inspector.get_columns(table_name)]
                assert names, table_name
                table = sa.table(table_name, *(sa.column(n) for n in names))
                for row in conn.execute(sa.select(*table.c)):
                    assert len(row) == len(names)
                    cells.extend(
                        (table_name, name, _as_text(value))
                        for name, value in zip(names, row, strict=True)
                    )
        db.session.remove()
    return cells


def _key_forms(app) -> dict[str, str]:
    """The KEK and the successor HMAC key derived from it, as raw bytes
    (read back as latin-1, like bytes columns), hex and base64."""
    kek = app.config["LATCHKEY"].kek_bytes()
    hmac_key = derive_key(kek, SUCCESSOR_KEY_PURPOSE)
    assert hmac_key == app.extensions["latchkey"].rotation._key
    forms = {}
    for name, raw in (("KEK", kek), ("successor HMAC key", hmac_key)):
        forms[f"{name} (raw)"] = raw.decode("latin-1")
        forms[f"{name} (hex)"] = raw.hex()
        forms[f"{name} (base64url)"] = base64.urlsafe_b64encode(raw).decode()[:40]
        standard = base64.b64encode(raw).decode()[:40]
        if standard not in forms.values():  # the same unless it has + or /
            forms[f"{name} (base64)"] = standard
    return forms


def test_no_issued_secret_is_stored(app, live_server, factories):
    base_url = live_server.url
    person = factories.account()
    rp = factories.client(
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        refresh_grace_seconds=30,
    )
    browser = new_browser()

    auth = AuthRequest.make(rp)
    code = get_code(browser, base_url, auth, person)
    first = redeem_code(base_url, auth, code)
    assert first.status_code == 200, first.text
    tokens = first.json()
    rotated = refresh(base_url, rp, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    renewed = rotated.json()
    # A retry within the client's window: the same successor, derived again
    # from the presented token, since it is stored nowhere.
    retried = refresh(base_url, rp, tokens["refresh_token"])
    assert retried.status_code == 200, retried.text
    assert retried.json()["refresh_token"] == renewed["refresh_token"]
    service = token_request(base_url, {"grant_type": "client_credentials"}, client=rp)
    assert service.status_code == 200, service.text

    secrets = {
        "authorization code": code,
        "access token": tokens["access_token"],
        "id token": tokens["id_token"],
        "refresh token": tokens["refresh_token"],
        "rotated access token": renewed["access_token"],
        "rotated refresh token (the successor)": renewed["refresh_token"],
        "access token of the retry": retried.json()["access_token"],
        # Successors are computed when needed, never kept ahead of time.
        "next successor": app.extensions["latchkey"].rotation.successor(
            renewed["refresh_token"]
        ),
        "client credentials access token": service.json()["access_token"],
        "client secret": rp.secret,
        "session cookie": browser.cookies.get("lk_session"),
        "device cookie": browser.cookies.get("lk_device"),
        "password": person.password,
        **_key_forms(app),
    }
    # Every other cookie the browser holds (the CSRF session, say) too.
    for cookie in browser.cookies:
        if cookie.value not in secrets.values():
            secrets[f"cookie {cookie.name}"] = cookie.value
    for name, value in secrets.items():
        assert len(value or "") >= 20, f"{name} was not issued"
    assert len(set(secrets.values())) == len(secrets)

    cells = dump_database(app)
    tables = {table for table, _, _ in cells}
    assert {
        "accounts",
        "clients",
        "sessions",
        "devices",
        "grants",
        "refresh_tokens",
        "authorization_codes",
    } <= tables

    leaks = [
        f"{name} in {table}.{column}"
        for table, column, text in cells
        for name, value in secrets.items()
        if value in text
    ]
    assert not leaks, leaks

    # Looked in the right place: what is stored is the hash.
    stored = {text for _, _, text in cells}
    for name in (
        "authorization code",
        "refresh token",
        "rotated refresh token (the successor)",
        "client secret",
        "session cookie",
        "device cookie",
    ):
        assert sha256_hex(secrets[name]) in stored, f"hash of {name} not found"
    # The password is an argon2id hash, not a fast one.
    assert sha256_hex(person.password) not in stored
    assert any(
        table == "accounts" and text.startswith("$argon2id$")
        for table, _, text in cells
    )


def test_second_factors_and_emailed_links_are_not_stored_either(app, factories):
    """TOTP secrets are encrypted under the KEK; recovery codes and emailed
    links are stored as SHA-256 only."""
    person = factories.account()
    totp_secret, recovery_codes = enable_totp_directly(app, person.id)
    with app.app_context():
        account = db.session.get(Account, person.id)
        links = [
            issue_link(account, purpose, 600)
            for purpose in (LinkPurpose.RESET_PASSWORD, LinkPurpose.VERIFY_EMAIL)
        ]
        db.session.commit()
        db.session.remove()

    secrets = {
        "totp secret": totp_secret,
        **{f"recovery code {n}": code for n, code in enumerate(recovery_codes)},
        **{
            f"recovery code {n} (bare)": code.replace("-", "")
            for n, code in enumerate(recovery_codes)
        },
        **{f"link {n}": link for n, link in enumerate(links)},
    }
    stored = "\n".join(value for _, _, value in dump_database(app))
    leaks = [name for name, value in secrets.items() if value in stored]
    assert not leaks, leaks
    assert all(sha256_hex(link) in stored for link in links)
    assert sha256_hex(recovery_codes[0].replace("-", "")) in stored


def _links_mailed(mail_dir, skip=frozenset()) -> list[str]:
    """Every single-use link token in the .eml files not in ``skip``."""
    tokens = []
    for path in set(mail_dir.glob("*.eml")) - skip:
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        text = message.get_body(("plain",)).get_content()
        tokens += re.findall(r"/(?:password/reset|verify-email|confirm)/([\w-]+)", text)
    return tokens


def test_queued_mail_does_not_store_its_links(app, live_server, factories, mail_dir):
    """Email bodies wait in the outbox, and they carry reset, verification
    and email-change links: the rows must not give those away."""
    earlier_mail = frozenset(mail_dir.glob("*.eml"))
    person = factories.account()
    browser = new_browser()
    for path, fields in (
        ("/password/forgot", {"email": person.email}),
        ("/signup", {"email": "joiner@example.com", "password": "amber fjord 64 kite"}),
    ):
        page = browser.get(live_server.url + path, timeout=TIMEOUT)
        browser.post(
            live_server.url + path,
            data={"csrf_token": csrf_token(page.text), **fields},
            timeout=TIMEOUT,
        )
    sign_in(browser, live_server.url, person)
    page = browser.get(live_server.url + "/account/email", timeout=TIMEOUT)
    browser.post(
        live_server.url + "/account/email",
        data={
            "csrf_token": csrf_token(page.text),
            "new_email": "moved@example.com",
            "current_password": person.password,
        },
        timeout=TIMEOUT,
    )
    before = "\n".join(value for _, _, value in dump_database(app))  # still queued
    with app.app_context():
        run_once()
        db.session.remove()
    tokens = _links_mailed(mail_dir, earlier_mail)
    assert len(tokens) >= 3
    after = "\n".join(value for _, _, value in dump_database(app))
    for token in tokens:
        assert token not in before
        assert token not in after
        assert sha256_hex(token) in after
