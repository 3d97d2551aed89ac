"""The flask commands, driven through Flask's CLI runner against the test
database: users, clients (secrets shown once, stored hashed), keys, dev-setup."""

import hashlib
import json
import secrets
import time
from datetime import datetime

import jwt
import pytest
from sqlalchemy import func, select, text

from app import create_app
from app.accounts.services import check_password
from app.extensions import db
from app.models import Account, Client, Device, Grant, RefreshToken, SecurityEvent
from app.oauth.tokens import Subject
from app.security.opaque_tokens import hash_token

USAGE_ERROR = 2  # click's exit code for bad arguments
FAILURE = 1


@pytest.fixture
def cli(app):
    """Run ``flask <args>`` in-process; returns click's Result."""
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(args=list(args), input=input)

    return invoke


def ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def failed(result, code):
    """A handled failure (click's own exit), not a traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result.output


def as_json(result):
    return json.loads(ok(result).stdout)


def _password() -> str:
    return "pw-" + secrets.token_urlsafe(12)


# -- users ------------------------------------------------------------------
def test_users_create_list_and_show(cli, app):
    password = _password()
    made = as_json(
        cli(
            "users", "create", "Ada@Example.COM", "--name", "Ada",
            "--password", password, "--json",
        )
    )  # fmt: skip
    assert made["email"] == "ada@example.com"  # normalised
    assert made["name"] == "Ada"
    assert made["status"] == "active"
    assert made["has_password"] is True
    assert made["id"]

    listed = as_json(cli("users", "list", "--json"))
    assert [a["email"] for a in listed] == ["ada@example.com"]
    assert as_json(cli("users", "show", "ADA@example.com", "--json")) == made

    human = ok(cli("users", "show", "ada@example.com")).output
    assert "ada@example.com" in human
    assert password not in human
    with app.app_context():
        passwords = app.extensions["latchkey"].passwords
        assert check_password(passwords, "ada@example.com", password).id == made["id"]
        db.session.remove()


def test_users_create_prompts_for_password(cli, app):
    password = _password()
    result = ok(
        cli("users", "create", "grace@example.com", input=f"{password}\n{password}\n")
    )
    assert password not in result.stdout  # hidden input is not echoed
    with app.app_context():
        passwords = app.extensions["latchkey"].passwords
        assert check_password(passwords, "grace@example.com", password) is not None
        db.session.remove()


def test_users_create_duplicate_email_fails_clearly(cli):
    ok(cli("users", "create", "ada@example.com", "--password", _password()))
    output = failed(
        cli("users", "create", "ADA@example.com", "--password", _password()), FAILURE
    )
    assert "already exists" in output
    assert len(as_json(cli("users", "list", "--json"))) == 1


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "ada@localhost",
        "a b@example.com",
        # Issue 8: an address list is not one address.
        "ada@example.com,eve@example.com",
        "Ada <ada@example.com>",
    ],
)
def test_users_create_bad_email_is_a_usage_error(cli, email):
    output = failed(cli("users", "create", email, "--password", _password()), 2)
    assert "Usage:" in output
    assert "not an email address" in output
    assert as_json(cli("users", "list", "--json")) == []


def test_users_create_short_password_is_a_usage_error(cli):
    output = failed(
        cli("users", "create", "ada@example.com", "--password", "short"), USAGE_ERROR
    )
    assert "--password" in output
    assert "at least 8 characters" in output


def test_users_create_refuses_a_weak_password_in_the_web_forms_words(
    cli, app, monkeypatch
):
    """Issue 10: every place that sets a password applies the one policy
    (app/security/password_policy.py), with the sign-up page's message."""
    from html import unescape

    from tests.flows.helpers import csrf_token

    weak = "password1234"
    output = failed(
        cli("users", "create", "ada@example.com", "--password", weak), USAGE_ERROR
    )
    assert "--password" in output
    monkeypatch.setattr(app.config["LATCHKEY"], "signup_enabled", True)
    browser = app.test_client()
    page = browser.get("/signup")
    answer = browser.post(
        "/signup",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": "ada@example.com",
            "password": weak,
        },
    )
    assert answer.status_code == 400
    with app.app_context():
        from app.accounts.credentials import WeakPassword, check_new_password

        with pytest.raises(WeakPassword) as refused:
            check_new_password("ada@example.com", "", weak)
    message = " ".join(refused.value.problems)
    assert message in " ".join(output.split())
    assert message in unescape(answer.get_data(as_text=True))
    assert as_json(cli("users", "list", "--json")) == []


def test_users_show_unknown_email_fails(cli):
    output = failed(cli("users", "show", "nobody@example.com"), FAILURE)
    assert "no account with email nobody@example.com" in output


# -- clients ----------------------------------------------------------------
REDIRECT = "https://rp.example.com/callback"


def _client_row(app, client_id) -> dict:
    with app.app_context():
        row = db.session.execute(
            text("SELECT * FROM clients WHERE client_id = :id"), {"id": client_id}
        ).mappings()
        found = [dict(r) for r in row]
        db.session.remove()
    assert len(found) == 1
    return found[0]


def test_confidential_client_secret_is_shown_once_and_stored_hashed(cli, app):
    made = as_json(
        cli("clients", "create", "Shop", "--redirect-uri", REDIRECT, "--json")
    )
    secret = made["client_secret"]
    assert len(secret) >= 43  # 256 bits, base64url
    assert made["public"] is False
    assert made["redirect_uris"] == [REDIRECT]
    assert made["grant_types"] == ["authorization_code", "refresh_token"]

    row = _client_row(app, made["client_id"])
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    for column, value in row.items():
        assert secret not in str(value), column

    for args in (
        ("clients", "show", made["client_id"]),
        ("clients", "show", made["client_id"], "--json"),
        ("clients", "list"),
        ("clients", "list", "--json"),
    ):
        output = ok(cli(*args)).output
        assert made["client_id"] in output
        assert secret not in output
        assert row["secret_hash"] not in output
        assert not any(
            line.split()[0] in ("client_secret", '"client_secret":')
            for line in output.splitlines()
            if line.strip()
        )
    shown = as_json(cli("clients", "show", made["client_id"], "--json"))
    assert shown == {k: v for k, v in made.items() if k != "client_secret"}


def test_confidential_client_human_output_prints_secret_once(cli, app):
    result = ok(
        cli("clients", "create", "Shop", "--redirect-uri", REDIRECT, "--client-id",
            "shop")
    )  # fmt: skip
    row = _client_row(app, "shop")
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("client_secret")]
    secret = line.split()[-1]
    assert hash_token(secret) == row["secret_hash"]
    assert result.stdout.count(secret) == 1
    assert "keeps only its hash" in result.stderr


def test_public_client_has_no_secret(cli, app):
    made = as_json(
        cli(
            "clients", "create", "Phone app", "--public",
            "--redirect-uri", "com.example.app:/callback", "--json",
        )
    )  # fmt: skip
    assert made["client_secret"] is None
    assert made["public"] is True
    assert made["token_endpoint_auth_method"] == "none"
    assert _client_row(app, made["client_id"])["secret_hash"] is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://rp.example.com/callback",  # plain http off loopback
        "https://rp.example.com/callback#frag",
        "javascript:alert(1)",
        "/callback",
    ],
)
def test_clients_create_invalid_redirect_uri_is_a_usage_error(cli, uri):
    output = failed(cli("clients", "create", "Bad", "--redirect-uri", uri), USAGE_ERROR)
    assert "redirect URI" in output
    assert uri in output
    assert as_json(cli("clients", "list", "--json")) == []


BAD_BACKCHANNEL_URIS = [
    "not a uri",
    "/logout",
    "rp.example.com/logout",
    "ftp://rp.example.com/logout",
    "javascript:alert(1)",
    "https:///logout",
    "https://rp.example.com/logout#frag",
    "https://rp.example.com/logout#",
    "https://rp.example.com:99999/logout",
    "https://rp.example.com/log out",
    "https://rp.example.com/\x00",
    "https://rp.example.com/" + "x" * 2000,
]


@pytest.mark.parametrize("uri", BAD_BACKCHANNEL_URIS)
def test_clients_create_invalid_backchannel_logout_uri_is_a_usage_error(cli, uri):
    # Back-Channel Logout §2.2: an absolute http(s) URL without a fragment.
    output = failed(
        cli(
            "clients",
            "create",
            "Bad",
            "--redirect-uri",
            REDIRECT,
            "--backchannel-logout-uri",
            uri,
        ),
        USAGE_ERROR,
    )
    assert "back-channel logout URI" in output
    assert as_json(cli("clients", "list", "--json")) == []


@pytest.mark.parametrize("uri", ["not a uri", "https://rp.example.com/bye#x", "/bye"])
def test_clients_create_invalid_post_logout_redirect_uri_is_a_usage_error(cli, uri):
    output = failed(
        cli(
            "clients",
            "create",
            "Bad",
            "--redirect-uri",
            REDIRECT,
            "--post-logout-redirect-uri",
            uri,
        ),
        USAGE_ERROR,
    )
    assert "redirect URI" in output
    assert as_json(cli("clients", "list", "--json")) == []


@pytest.mark.parametrize(
    "uri", ["https://rp.example.com/logout?via=latchkey", "http://127.0.0.1:9/bc"]
)
def test_clients_create_accepts_a_good_backchannel_logout_uri(cli, uri):
    made = as_json(
        cli(
            "clients",
            "create",
            "Good",
            "--redirect-uri",
            REDIRECT,
            "--backchannel-logout-uri",
            uri,
            "--json",
        )
    )
    assert made["backchannel_logout_uri"] == uri


def test_backchannel_logout_uri_must_be_https_in_production(app_ctx):
    from app.clients.services import InvalidClientMetadata, create_client

    with pytest.raises(InvalidClientMetadata, match="https"):
        create_client(
            "Prod",
            [REDIRECT],
            backchannel_logout_uri="http://rp.example.com/logout",
            production=True,
        )
    client, _ = create_client(
        "Prod",
        [REDIRECT],
        backchannel_logout_uri="https://rp.example.com/logout",
        production=True,
    )
    assert client.backchannel_logout_uri == "https://rp.example.com/logout"


def test_clients_create_unknown_grant_type_is_a_usage_error(cli):
    output = failed(
        cli(
            "clients", "create", "Bad", "--redirect-uri", REDIRECT,
            "--grant-type", "password",
        ),
        USAGE_ERROR,
    )  # fmt: skip
    assert "--grant-type" in output
    assert "password" in output
    assert as_json(cli("clients", "list", "--json")) == []


def test_public_client_cannot_use_client_credentials(cli):
    output = failed(
        cli(
            "clients", "create", "Bad", "--public",
            "--grant-type", "client_credentials",
        ),
        USAGE_ERROR,
    )  # fmt: skip
    assert "public client cannot use client_credentials" in output


def test_clients_create_taken_id_is_a_usage_error(cli):
    ok(cli("clients", "create", "A", "--redirect-uri", REDIRECT, "--client-id", "a"))
    output = failed(
        cli("clients", "create", "B", "--redirect-uri", REDIRECT, "--client-id", "a"),
        USAGE_ERROR,
    )
    assert "already taken" in output


def test_clients_show_unknown_id_fails(cli):
    output = failed(cli("clients", "show", "no-such-client"), FAILURE)
    assert "no client with id no-such-client" in output


def test_clients_delete_unknown_id_fails(cli):
    output = failed(cli("clients", "delete", "no-such-client", "--yes"), FAILURE)
    assert "no client with id no-such-client" in output


def test_clients_delete_asks_first(cli):
    ok(cli("clients", "create", "A", "--redirect-uri", REDIRECT, "--client-id", "a"))
    failed(cli("clients", "delete", "a", input="n\n"), FAILURE)
    ok(cli("clients", "show", "a"))
    assert "deleted a" in ok(cli("clients", "delete", "a", input="y\n")).output
    failed(cli("clients", "show", "a"), FAILURE)


def _grant_for(app, client_id: str, email: str) -> str:
    """A grant with a refresh token, as a finished authorization leaves."""
    with app.app_context():
        services = app.extensions["latchkey"]
        account = db.session.execute(
            select(Account).where(Account.email == email)
        ).scalar_one()
        device = Device(account_id=account.id, kind="browser", name="Test")
        db.session.add(device)
        db.session.flush()
        subject = Subject(
            account=account, device_id=device.id, session_sid=None,
            auth_time=account.created_at, amr=["pwd"],
        )  # fmt: skip
        client = db.session.get(Client, client_id)
        grant = services.issuer.create_grant(subject, client, "openid", True)
        db.session.commit()
        grant_id = grant.id
        db.session.remove()
    return grant_id


def _count(app, model, **where) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model).filter_by(**where)
        n = db.session.execute(query).scalar_one()
        db.session.remove()
    return n


def test_clients_delete_takes_grants_and_tokens_with_it(cli, app):
    ok(cli("clients", "create", "A", "--redirect-uri", REDIRECT, "--client-id", "a"))
    ok(cli("clients", "create", "B", "--redirect-uri", REDIRECT, "--client-id", "b"))
    ok(cli("users", "create", "ada@example.com", "--password", _password()))
    gone = _grant_for(app, "a", "ada@example.com")
    kept = _grant_for(app, "b", "ada@example.com")

    assert ok(cli("clients", "delete", "a", "--yes")).output.strip() == "deleted a"
    assert _count(app, Grant, id=gone) == 0
    assert _count(app, RefreshToken, grant_id=gone) == 0
    assert _count(app, Grant, id=kept) == 1
    assert _count(app, RefreshToken, grant_id=kept) == 1
    assert [c["client_id"] for c in as_json(cli("clients", "list", "--json"))] == ["b"]


# -- keys -------------------------------------------------------------------
def _jwks_kids(client) -> set[str]:
    response = client.get("/jwks.json")
    assert response.status_code == 200
    return {k["kid"] for k in response.json["keys"]}


def _signing(keys: list[dict]) -> dict[str, str]:
    return {k["alg"]: k["kid"] for k in keys if k["signing"]}


def _client_credentials_token(cli, client) -> str:
    made = as_json(
        cli("clients", "create", "Worker", "--grant-type", "client_credentials",
            "--json")
    )  # fmt: skip
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(made["client_id"], made["client_secret"]),
    )
    assert response.status_code == 200, response.json
    return response.json["access_token"]


def test_keys_list_shows_the_published_signing_keys(cli, client):
    keys = as_json(cli("keys", "list", "--json"))
    signing = _signing(keys)
    assert set(signing) == {"ES256", "RS256"}
    assert set(signing.values()) <= _jwks_kids(client)
    human = ok(cli("keys", "list")).output
    assert all(kid in human for kid in signing.values())


def _wait_until(iso: str) -> None:
    """Sleep until the moment ``iso`` (a key's activates_at) has passed."""
    delay = datetime.fromisoformat(iso).timestamp() - time.time()
    assert delay < 10, "pre-publication longer than the test settings say"
    time.sleep(max(delay, 0) + 0.05)


def test_keys_deploy_step_creates_first_keys_once(cli, app):
    # The session's keys were made by this same step; running it again (a
    # second deploy, a second replica's job) creates nothing.
    assert as_json(cli("keys", "--json")) == []
    signing = _signing(as_json(cli("keys", "list", "--json")))
    assert set(signing) == {"ES256", "RS256"}


def test_keys_rotate_prepublishes_then_signs_with_the_new_key(cli, client):
    before = _signing(as_json(cli("keys", "list", "--json")))
    # RS256: what access tokens are signed with by default (RFC 9068 §2.1).
    old_kid = before["RS256"]

    (new,) = as_json(cli("keys", "rotate", "--alg", "RS256", "--json"))
    assert new["alg"] == "RS256"
    assert new["kid"] != old_kid
    # Published before it signs (pre-publication), so every JWKS cache can
    # learn it first; the old key still signs meanwhile.
    assert new["published"] is True
    assert new["signing"] is False
    assert {old_kid, new["kid"]} <= _jwks_kids(client)
    token = _client_credentials_token(cli, client)
    assert jwt.get_unverified_header(token)["kid"] == old_kid
    # A second rotation cannot overtake the pending one.
    assert "pending" in failed(cli("keys", "rotate", "--alg", "RS256"), FAILURE)

    _wait_until(new["activates_at"])
    # RFC 7517: the old key stays published so tokens it signed still verify.
    assert {old_kid, new["kid"]} <= _jwks_kids(client)
    listed = {k["kid"]: k for k in as_json(cli("keys", "list", "--json"))}
    assert listed[old_kid]["signing"] is False
    assert listed[old_kid]["retired_at"] == new["activates_at"]
    assert listed[old_kid]["expires_at"] is not None
    assert _signing(listed.values()) == {"ES256": before["ES256"], "RS256": new["kid"]}
    token = _client_credentials_token(cli, client)
    assert jwt.get_unverified_header(token)["kid"] == new["kid"]


def test_keys_rotate_without_alg_rotates_every_algorithm(cli, client):
    before = _signing(as_json(cli("keys", "list", "--json")))
    rotated = as_json(cli("keys", "rotate", "--json"))
    assert {k["alg"] for k in rotated} == {"ES256", "RS256"}
    assert not {k["kid"] for k in rotated} & set(before.values())
    assert set(before.values()) | {k["kid"] for k in rotated} <= _jwks_kids(client)
    _wait_until(max(k["activates_at"] for k in rotated))
    after = _signing(as_json(cli("keys", "list", "--json")))
    assert after == {k["alg"]: k["kid"] for k in rotated}


def test_keys_revoke_withdraws_the_key_at_once(cli, client, app):
    before = _signing(as_json(cli("keys", "list", "--json")))
    token = _client_credentials_token(cli, client)
    revoked_kid = jwt.get_unverified_header(token)["kid"]
    assert revoked_kid == before["RS256"]

    result = as_json(cli("keys", "revoke", "--json", "--", revoked_kid))
    assert result["revoked"]["revoked_at"] is not None
    assert result["revoked"]["published"] is False
    successor = result["successor"]["kid"]
    assert result["successor"]["signing"] is True
    kids = _jwks_kids(client)
    assert revoked_kid not in kids
    assert successor in kids
    assert (
        jwt.get_unverified_header(_client_credentials_token(cli, client))["kid"]
        == successor
    )
    with app.app_context():
        tags = (
            db.session.execute(
                select(SecurityEvent.details).where(
                    SecurityEvent.tag == "operator:key:revoked"
                )
            )
            .scalars()
            .all()
        )
    assert {"by": "operator", "kid": revoked_kid, "alg": "RS256",
            "successor": successor} in tags  # fmt: skip
    # Revoking again changes nothing; an unknown kid is a handled failure.
    again = as_json(cli("keys", "revoke", "--json", "--", revoked_kid))
    assert again["successor"] is None
    assert "no signing key" in failed(cli("keys", "revoke", "nope"), FAILURE)


def test_keys_revoke_of_a_prepublished_key_keeps_its_predecessor(cli, client):
    before = _signing(as_json(cli("keys", "list", "--json")))
    (pending,) = as_json(cli("keys", "rotate", "--alg", "RS256", "--json"))
    as_json(cli("keys", "revoke", "--json", "--", pending["kid"]))
    listed = {k["kid"]: k for k in as_json(cli("keys", "list", "--json"))}
    assert listed[before["RS256"]]["retired_at"] is None
    assert listed[before["RS256"]]["expires_at"] is None
    _wait_until(pending["activates_at"])
    assert _signing(as_json(cli("keys", "list", "--json"))) == before
    assert pending["kid"] not in _jwks_kids(client)


# -- dev-setup --------------------------------------------------------------
def test_dev_setup_in_testing_mode_creates_no_demo_data(cli):
    result = ok(cli("dev-setup"))
    assert "password" not in result.output
    assert as_json(cli("users", "list", "--json")) == []
    assert as_json(cli("clients", "list", "--json")) == []
    assert set(_signing(as_json(cli("keys", "list", "--json")))) == {"ES256", "RS256"}


@pytest.fixture
def development_app(app, base_env):
    """A development-mode app on the test database (secrets from base_env, so
    nothing is written under instance/)."""
    dev = create_app(
        {**base_env, "LATCHKEY_ENV": "development", "LATCHKEY_DEMO_DATA": "true"}
    )
    yield dev
    with dev.app_context():
        db.session.remove()
        db.engine.dispose()


def test_dev_setup_in_development_creates_demo_data_once(development_app, app):
    """A demo account once; the demo relying party and its URL every time."""
    runner = development_app.test_cli_runner()
    first = runner.invoke(args=["dev-setup"])
    assert first.exit_code == 0, first.output
    fields = dict(
        line.strip().split(":", 1) for line in first.output.splitlines() if ":" in line
    )
    email = fields["account"].strip()
    password = fields["password"].split()[0]
    with app.app_context():
        passwords = app.extensions["latchkey"].passwords
        assert check_password(passwords, email, password) is not None
        demo = db.session.get(Client, "demo-rp")
        # The demo relying party is a public client living beside the issuer.
        assert demo.is_public
        assert demo.redirect_uris == [base_url_of(development_app) + "/demo/callback"]
        db.session.remove()
    assert fields["open"].strip() == base_url_of(development_app) + "/demo/start"

    second = runner.invoke(args=["dev-setup"])
    assert second.exit_code == 0, second.output
    assert "already has accounts" in second.output
    assert password not in second.output
    assert fields["open"].strip() in second.output  # the URL, printed again
    assert _count(app, Account) == 1
    assert _count(app, Client) == 1


# -- the refresh retry window, per client ---------------------------------------
def test_refresh_grace_is_set_at_creation_and_changed_by_update(cli, app):
    made = as_json(
        cli(
            "clients", "create", "Two tabs", "--redirect-uri", REDIRECT,
            "--refresh-grace-seconds", "5", "--client-id", "two-tabs", "--json",
        )
    )  # fmt: skip
    assert made["refresh_grace_seconds"] == 5
    assert _client_row(app, made["client_id"])["refresh_grace_seconds"] == 5
    changed = as_json(
        cli(
            "clients", "update", made["client_id"],
            "--refresh-grace-seconds", "0", "--json",
        )
    )  # fmt: skip
    assert changed["refresh_grace_seconds"] == 0
    # Back to the server's LATCHKEY_REFRESH_GRACE_SECONDS.
    ok(cli("clients", "update", made["client_id"], "--default-refresh-grace"))
    assert _client_row(app, made["client_id"])["refresh_grace_seconds"] is None
    plain = as_json(
        cli("clients", "create", "Plain", "--redirect-uri", REDIRECT, "--json")
    )
    assert plain["refresh_grace_seconds"] is None


@pytest.mark.parametrize("value", ["-1", "61", "ten", "1.5"])
def test_refresh_grace_out_of_range_is_a_usage_error(cli, app, value):
    failed(
        cli(
            "clients", "create", "Bad", "--redirect-uri", REDIRECT,
            "--refresh-grace-seconds", value,
        ),
        USAGE_ERROR,
    )  # fmt: skip
    assert as_json(cli("clients", "list", "--json")) == []
    ok(cli("clients", "create", "A", "--redirect-uri", REDIRECT, "--client-id", "a"))
    failed(cli("clients", "update", "a", "--refresh-grace-seconds", value), USAGE_ERROR)
    assert _client_row(app, "a")["refresh_grace_seconds"] is None


def test_clients_update_needs_a_known_client_and_a_change(cli):
    output = failed(
        cli("clients", "update", "no-such-client", "--refresh-grace-seconds", "3"),
        FAILURE,
    )
    assert "no client with id no-such-client" in output
    ok(cli("clients", "create", "A", "--redirect-uri", REDIRECT, "--client-id", "a"))
    assert "nothing to change" in failed(cli("clients", "update", "a"), USAGE_ERROR)
    both = cli(
        "clients", "update", "a", "--refresh-grace-seconds", "3",
        "--default-refresh-grace",
    )  # fmt: skip
    assert "exclude each other" in failed(both, USAGE_ERROR)


def base_url_of(application) -> str:
    return application.config["LATCHKEY"].issuer


def test_clients_create_defaults_to_rs256_id_tokens(cli, app):
    # OIDC Dynamic Client Registration §2: RS256 when none is named.
    made = as_json(cli("clients", "create", "Shop", "--redirect-uri", REDIRECT,
                       "--json"))  # fmt: skip
    assert made["id_token_signed_response_alg"] == "RS256"
    assert _client_row(app, made["client_id"])["id_token_signed_response_alg"] == (
        "RS256"
    )
    chosen = as_json(
        cli("clients", "create", "Edge", "--redirect-uri", REDIRECT,
            "--id-token-alg", "ES256", "--json")
    )  # fmt: skip
    assert chosen["id_token_signed_response_alg"] == "ES256"


def test_clients_create_refuses_an_unknown_id_token_alg(cli):
    output = failed(
        cli("clients", "create", "Bad", "--redirect-uri", REDIRECT,
            "--id-token-alg", "HS256"),
        USAGE_ERROR,
    )  # fmt: skip
    assert "--id-token-alg" in output
    assert as_json(cli("clients", "list", "--json")) == []


def test_clients_set_id_token_alg_changes_an_existing_client(cli, app):
    made = as_json(
        cli("clients", "create", "Old", "--redirect-uri", REDIRECT,
            "--id-token-alg", "ES256", "--json")
    )  # fmt: skip
    changed = as_json(
        cli("clients", "set-id-token-alg", made["client_id"], "RS256", "--json")
    )
    assert changed["id_token_signed_response_alg"] == "RS256"
    assert _client_row(app, made["client_id"])["id_token_signed_response_alg"] == (
        "RS256"
    )
    failed(cli("clients", "set-id-token-alg", "nobody", "RS256"), FAILURE)
    failed(cli("clients", "set-id-token-alg", made["client_id"], "none"), USAGE_ERROR)
    assert _client_row(app, made["client_id"])["id_token_signed_response_alg"] == (
        "RS256"
    )
