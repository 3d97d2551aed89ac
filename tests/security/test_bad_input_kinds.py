"""The kinds of bad input issue 8's sweep found, one test per kind and per
place (tests/security/test_bad_input_sweep.py keeps looking for more):

* a field sent as a multipart file, or the form sent as JSON: the form's
  own page with 400, on every form (was a 500);
* any character in any /authorize parameter: a proper error (a quote in
  response_type, CR/LF in redirect_uri were 500s);
* a parameter sent twice: invalid_request (RFC 6749 §3.1, §3.2);
* a scope of spaces: invalid_scope (RFC 6749 §3.3);
* Strict-Transport-Security in production with an https issuer;
* the CSRF token changes with the session (sign-in and sign-out).
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.datastructures import MultiDict

from app import create_app
from tests.accounts.helpers import Web, basic_auth, make_stale, sign_in
from tests.flows.helpers import csrf_token, form_inputs
from tests.support.oauth import pkce_pair

SIGNED_OUT_FORMS = {
    "/login": ["email", "password"],
    "/signup": ["email", "name", "password"],
    "/password/forgot": ["email"],
}
SIGNED_IN_FORMS = {
    "/account/email": ["new_email", "current_password"],
    "/account/password": ["password", "current_password"],
    "/account/2fa/setup": ["code", "password"],
    "/account/deactivate": ["password"],
    "/link": ["user_code"],
}


def good_fields(page_html: str, names: list[str], password: str) -> dict:
    fields = {"csrf_token": csrf_token(page_html)}
    for name in names:
        fields[name] = password if "password" in name else "ada@example.com"
    return fields


def assert_form_again(response, names):
    """The form's own page, answering 400: the fields are there to fill in."""
    assert response.status_code == 400, response.text[:300]
    assert response.content_type.startswith("text/html")
    assert "Traceback" not in response.text
    shown = form_inputs(response.text)
    assert "csrf_token" in shown
    assert set(names) & set(shown), shown


def send_with_file(web: Web, path: str, names: list[str], field: str, password):
    page = web.get(path)
    assert page.status_code == 200, (path, page.status_code)
    data = good_fields(page.text, names, password)
    data[field] = (io.BytesIO(b"ada@example.com"), "email.txt")
    return web.client.post(path, data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(
    ("path", "field"),
    [(path, field) for path, names in SIGNED_OUT_FORMS.items() for field in names],
)
def test_a_file_for_a_field_gets_the_form_again(app, path, field):
    web = Web(app)
    response = send_with_file(web, path, SIGNED_OUT_FORMS[path], field, "x" * 12)
    assert_form_again(response, SIGNED_OUT_FORMS[path])


@pytest.mark.parametrize(
    ("path", "field"),
    [(path, field) for path, names in SIGNED_IN_FORMS.items() for field in names],
)
def test_a_file_for_a_signed_in_field_gets_the_form_again(app, factories, path, field):
    person = factories.account()
    web = Web(app)
    sign_in(web, person)
    make_stale(app, person.id)  # so that the forms want the password
    names = SIGNED_IN_FORMS[path]
    response = send_with_file(web, path, names, field, person.password)
    assert response.status_code in (400, 401), response.text[:300]
    assert "Traceback" not in response.text
    assert set(names) & set(form_inputs(response.text))


@pytest.mark.parametrize("path", list(SIGNED_OUT_FORMS))
@pytest.mark.parametrize("body", ["fields", "wrong types", "array"])
def test_json_where_a_form_is_expected_gets_the_form_again(app, factories, path, body):
    person = factories.account()
    web = Web(app)
    page = web.get(path)
    fields = good_fields(page.text, SIGNED_OUT_FORMS[path], person.password)
    fields["email"] = person.email
    payload = {
        "fields": fields,
        "wrong types": {name: [1, {"a": None}] for name in fields},
        "array": [1, "a"],
    }[body]
    # The CSRF token in the header Flask-WTF accepts: only the body is wrong.
    response = web.client.post(
        path, json=payload, headers={"X-CSRFToken": fields["csrf_token"]}
    )
    assert_form_again(response, SIGNED_OUT_FORMS[path])
    assert web.get("/account").status_code == 302  # not signed in


def test_a_form_without_fields_refuses_json(app, factories):
    """Sign out has nothing but its CSRF token: JSON with the token in the
    header is still no form submission."""
    person = factories.account()
    web = Web(app)
    sign_in(web, person)
    token = csrf_token(web.get("/account").text)
    response = web.client.post("/logout", json={}, headers={"X-CSRFToken": token})
    assert response.status_code in (200, 400)
    assert web.get("/account").status_code == 200  # still signed in


# -- /authorize: any character in any parameter -------------------------------------
def authorize_params(client, **overrides) -> dict:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid",
        "state": "st",
        "nonce": "n",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    return params | overrides


@pytest.mark.parametrize(
    "response_type", ['co"de', "co\\de", "cöde", "code\x00", "code\r\nx", "c<o>de"]
)
def test_an_odd_response_type_is_unsupported(app, factories, response_type):
    client = factories.client(first_party=True)
    web = Web(app)
    response = web.get(
        "/authorize", query_string=authorize_params(client, response_type=response_type)
    )
    # RFC 6749 §4.1.2.1: the client and its URI are trusted, so it is told.
    assert response.status_code == 302, response.text[:300]
    assert response.location.startswith(client.redirect_uri + "?")
    query = parse_qs(urlsplit(response.location).query)
    assert query["error"] == ["unsupported_response_type"]
    assert query["state"] == ["st"]
    assert query["iss"] == [app.config["LATCHKEY"].issuer]
    assert "code" not in query


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:8765/callback\r\nX: y",
        'http://127.0.0.1:8765/"callback',
        "http://127.0.0.1:8765/callbäck",
        "http://127.0.0.1:8765/callback\x00",
        "http://127.0.0.1:8765/call\\back",
    ],
)
def test_an_odd_redirect_uri_gets_our_error_page(app, factories, redirect_uri):
    client = factories.client(first_party=True)
    web = Web(app)
    response = web.get(
        "/authorize", query_string=authorize_params(client, redirect_uri=redirect_uri)
    )
    # Not a registered URI: the person is told here, the client never.
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "<code>invalid_request</code>" in response.text


def test_a_scope_of_spaces_is_invalid_scope(app, factories):
    client = factories.client(first_party=True)
    web = Web(app)
    sign_in(web, factories.account())
    response = web.get("/authorize", query_string=authorize_params(client, scope="   "))
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.location).query)
    assert query["error"] == ["invalid_scope"]
    assert "code" not in query


# -- a parameter sent twice -----------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/token", {"grant_type": ["client_credentials", "client_credentials"]}),
        ("/token", {"grant_type": ["refresh_token"], "refresh_token": ["a", "b"]}),
        ("/revoke", {"token": ["a", "a"]}),
        ("/introspect", {"token": ["a", "b"]}),
        ("/device_authorization", {"scope": ["openid", "openid"]}),
        ("/userinfo", {"access_token": ["a", "a"]}),
    ],
)
def test_a_repeated_parameter_is_invalid_request(app, factories, path, params):
    client = factories.client(
        grant_types=["client_credentials", "refresh_token"], may_introspect=True
    )
    web = Web(app)
    pairs = MultiDict([(k, v) for k, values in params.items() for v in values])
    response = web.post(path, pairs, headers=basic_auth(client))
    assert response.status_code == 400, response.text
    assert response.get_json()["error"] == "invalid_request"


def test_a_parameter_in_query_and_body_is_repeated(app, factories):
    client = factories.client(grant_types=["client_credentials"])
    web = Web(app)
    response = web.post(
        "/token?grant_type=client_credentials",
        {"grant_type": "client_credentials"},
        headers=basic_auth(client),
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("name", ["state", "client_id", "nonce", "prompt", "max_age"])
def test_a_repeated_authorization_parameter_is_refused(app, factories, name):
    client = factories.client(first_party=True)
    web = Web(app)
    sign_in(web, factories.account())
    params = list(authorize_params(client, prompt="none", max_age="60").items())
    params.append((name, dict(params)[name]))
    response = web.get("/authorize", query_string=params)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "sent more than once" in response.text


def test_a_repeated_form_field_is_refused(app, factories):
    person = factories.account()
    web = Web(app)
    token = csrf_token(web.get("/login").text)
    response = web.post(
        "/login",
        MultiDict(
            [
                ("csrf_token", token),
                ("email", person.email),
                ("email", "other@example.com"),
                ("password", person.password),
            ]
        ),
    )
    assert response.status_code == 400
    assert web.get("/account").status_code == 302


# -- headers and tokens in the small -------------------------------------------------
def production_app(base_env, issuer: str):
    # The tests' short key pre-publication is refused in production.
    env = {k: v for k, v in base_env.items() if "SIGNING_KEY" not in k}
    return create_app(
        {
            **env,
            "LATCHKEY_ENV": "production",
            "LATCHKEY_ISSUER": issuer,
            "LATCHKEY_MAIL_BACKEND": "files",
            "LATCHKEY_PROVIDERS_FILE": "",  # the test upstream is plain http
        }
    )


def test_production_with_https_sends_hsts(app, base_env):
    prod = production_app(base_env, "https://id.example.com")
    for path in ("/login", "/.well-known/openid-configuration", "/nowhere"):
        response = prod.test_client().get(path, base_url="https://id.example.com")
        # RFC 6797 §6.1; no includeSubDomains: other hosts are not ours.
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_no_hsts_without_https_or_outside_production(app, base_env):
    loopback = production_app(base_env, "http://127.0.0.1:5000")
    assert (
        "Strict-Transport-Security" not in loopback.test_client().get("/login").headers
    )
    assert "Strict-Transport-Security" not in app.test_client().get("/login").headers


def test_a_csrf_token_from_before_sign_in_is_refused_after(app, factories):
    person = factories.account()
    web = Web(app)
    before = csrf_token(web.get("/login").text)
    sign_in(web, person)
    after = csrf_token(web.get("/account").text)
    assert after != before
    # A form from before the sign-in (or planted then) does nothing now.
    assert web.post("/logout", {"csrf_token": before}).status_code == 400
    assert web.get("/account").status_code == 200
    # The new one works; signing out retires it too.
    assert web.post("/logout", {"csrf_token": after}).status_code == 302
    assert web.get("/account").status_code == 302
    retired = web.post(
        "/login",
        {"csrf_token": after, "email": person.email, "password": person.password},
    )
    assert retired.status_code == 400
    assert web.get("/account").status_code == 302


@pytest.mark.parametrize("field", ["scope", "prompt", "max_age", "request"])
def test_a_multipart_authorization_post_is_refused(app, factories, field):
    """OIDC Core §3.1.2.1/§13.2: the POST binding is form-urlencoded; a
    parameter sent as a file part would read as absent."""
    client = factories.client(first_party=True)
    web = Web(app)
    sign_in(web, factories.account())
    data = authorize_params(client, **{field: "x"})
    data[field] = (io.BytesIO(b"x"), "x.txt")
    response = web.client.post(
        "/authorize", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "<code>invalid_request</code>" in response.text
    # The same request form-urlencoded, without the file part, goes through.
    data.pop(field)
    assert web.post("/authorize", data).status_code == 302
