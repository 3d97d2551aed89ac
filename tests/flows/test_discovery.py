"""Discovery (OIDC Discovery 1.0, RFC 8414) says what the server does, all
of it and nothing else: every protocol route is advertised (the URL map is
walked, so a new route is covered by itself), every advertised URL answers,
the document validates with Authlib's models, the token endpoint accepts
exactly the advertised grant types, and each endpoint exactly the advertised
client authentication methods.

Requests go to the URLs discovery names, never to paths written here.
"""

import json
import secrets
import time

import jwt
import pytest
import requests
from authlib.oauth2 import rfc8414, rfc9207
from authlib.oidc import rpinitiated
from authlib.oidc.discovery import OpenIDProviderMetadata
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound

from app.extensions import csrf
from app.oauth.discovery import MetadataError, build_metadata, validate_metadata
from app.web.metadata import Advertised, NotAdvertised, advertised_as, mark_of
from tests.flows.device_helpers import DEVICE_GRANT
from tests.flows.helpers import TIMEOUT, walk_authorize

OPENID = "/.well-known/openid-configuration"
OAUTH = "/.well-known/oauth-authorization-server"
# Blueprints that hold nothing but protocol endpoints; routes elsewhere are
# protocol routes when CSRF-exempt (a machine calls them) or marked.
PROTOCOL_BLUEPRINTS = {"oauth", "oauth_api"}
ALL_GRANTS = ["authorization_code", "refresh_token", "client_credentials", DEVICE_GRANT]
# The IANA "OAuth Token Endpoint Authentication Methods" a client might try.
AUTH_METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "none",
    "client_secret_jwt",
    "private_key_jwt",
]
# IANA OAuth grant types and extension grants a client might send.
KNOWN_GRANT_TYPES = [
    *ALL_GRANTS,
    "implicit",
    "password",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:saml2-bearer",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:openid:params:grant-type:ciba",
    "urn:ietf:params:oauth:grant-type:uma-ticket",
]


def _protocol_routes(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        exempt = f"{view.__module__}.{view.__name__}" in csrf._exempt_views
        if (
            rule.endpoint.split(".")[0] in PROTOCOL_BLUEPRINTS
            or exempt
            or mark_of(view) is not None
        ):
            yield rule, view


def _advertised_urls(metadata: dict) -> dict[str, str]:
    return {
        field: value
        for field, value in metadata.items()
        if field != "issuer" and isinstance(value, str) and value.startswith("http")
    }


# -- (a) the URL map and discovery agree, both ways ---------------------------
def test_every_protocol_route_is_advertised_or_says_why(app, metadata, issuer):
    routes = list(_protocol_routes(app))
    assert len(routes) >= 9  # the walk found the protocol routes at all
    for rule, view in routes:
        mark = mark_of(view)
        assert mark is not None, f"{rule.rule} is a protocol route discovery omits"
        if isinstance(mark, Advertised):
            assert metadata[mark.field] == issuer + rule.rule, rule.rule
        else:
            assert isinstance(mark, NotAdvertised)
            assert mark.reason


def test_every_advertised_url_routes_to_the_view_it_names(app, metadata, issuer):
    urls = _advertised_urls(metadata)
    for field in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
        "device_authorization_endpoint",
        "end_session_endpoint",
    ):
        assert field in urls, f"{field} is not advertised"
    adapter = app.url_map.bind("latchkey.test")
    for field, url in urls.items():
        assert url.startswith(issuer + "/"), (field, url)
        path = url.removeprefix(issuer)
        endpoint = _match(adapter, path)
        mark = mark_of(app.view_functions[endpoint])
        assert isinstance(mark, Advertised), (field, url)
        assert mark.field == field, (field, url)
        # And the running server answers there (405 for a POST-only
        # endpoint asked with GET is an answer; 404 is not).
        assert requests.get(url, timeout=TIMEOUT).status_code != 404, url


def _match(adapter, path: str) -> str:
    for method in ("GET", "POST"):
        try:
            endpoint, _args = adapter.match(path, method=method)
        except MethodNotAllowed:
            continue
        except NotFound:
            pytest.fail(f"{path} routes nowhere")
        return endpoint
    pytest.fail(f"{path} answers neither GET nor POST")


def test_both_well_known_documents_are_the_same(base_url, metadata, issuer):
    # RFC 8414 §3 and OIDC Discovery §4; §3.3 / §4.3: issuer is identical
    # to the one the document was fetched for.
    other = requests.get(base_url + OAUTH, timeout=TIMEOUT)
    assert other.status_code == 200
    assert other.json() == metadata
    assert metadata["issuer"] == issuer


def test_a_route_discovery_cannot_advertise_stops_start_up(app):
    server = app.extensions["latchkey"].server
    # An Authlib endpoint (RFC 8628's) with no route to reach it.
    with pytest.raises(MetadataError, match="device_authorization"):
        build_metadata(Flask("bare"), server, "https://id.example")
    # Two routes claiming one field.
    twice = Flask("twice")
    for path in ("/a", "/b"):
        view = advertised_as("token_endpoint")(lambda: "")
        twice.add_url_rule(path, path, view)
    with pytest.raises(MetadataError, match="two routes"):
        build_metadata(twice, server, "https://id.example")


# -- (b) the document validates --------------------------------------------------
def test_metadata_validates_with_authlibs_models(metadata):
    rfc8414.AuthorizationServerMetadata(metadata).validate(
        metadata_classes=[rfc9207.AuthorizationServerMetadata]
    )
    OpenIDProviderMetadata(metadata).validate(
        metadata_classes=[rpinitiated.OpenIDProviderMetadata]
    )


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        # OIDC Discovery §3: RS256 MUST be among the ID-token algorithms.
        ("id_token_signing_alg_values_supported", ["ES256"], "RS256"),
        # RFC 8414 §2: JWT client authentication needs its signing algorithms.
        ("token_endpoint_auth_methods_supported", ["private_key_jwt"], "required"),
        ("response_types_supported", None, "required"),
    ],
)
def test_start_up_refuses_metadata_authlib_rejects(metadata, field, value, why):
    broken = {k: v for k, v in metadata.items() if k != field}
    if value is not None:
        broken[field] = value
    with pytest.raises(MetadataError, match=why):
        validate_metadata(broken)


def test_a_development_issuer_off_loopback_is_still_validated(app):
    # Production refuses plain http off loopback (app/config.py); in
    # development the rest of the document is checked all the same.
    server = app.extensions["latchkey"].server
    lan = build_metadata(app, server, "http://idp.lan:5000")
    validate_metadata(lan)
    with pytest.raises(MetadataError, match="subject_types_supported"):
        validate_metadata({**lan, "subject_types_supported": ["pairwise", "x"]})


def test_unsupported_features_are_said_outright(metadata):
    # OIDC Discovery §3: request_uri_parameter_supported defaults to true
    # when omitted; the others default to false, said here all the same.
    as_read = OpenIDProviderMetadata(metadata)  # with the spec's defaults
    for field in (
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "claims_parameter_supported",
    ):
        assert metadata[field] is False, field
        assert getattr(as_read, field) is False, field
    # No JWT client authentication, so no signing algorithms for it
    # (RFC 8414 §2: present only with private_key_jwt / client_secret_jwt).
    assert not any(k.endswith("auth_signing_alg_values_supported") for k in metadata)
    assert metadata["response_modes_supported"] == ["query"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]


def test_the_jwks_holds_a_key_for_each_advertised_algorithm(metadata):
    keys = requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json()["keys"]
    assert set(metadata["id_token_signing_alg_values_supported"]) <= {
        k["alg"] for k in keys
    }


# -- (c) grant and response types ----------------------------------------------
@pytest.fixture
def everything_client(factories):
    """A confidential client registered for every grant Latchkey has."""
    return factories.client(grant_types=ALL_GRANTS, may_introspect=True)


@pytest.fixture
def public_client(factories):
    grants = ["authorization_code", "refresh_token", DEVICE_GRANT]
    return factories.client(public=True, grant_types=grants)


def test_token_endpoint_accepts_exactly_the_advertised_grant_types(
    metadata, everything_client
):
    advertised = metadata["grant_types_supported"]
    assert DEVICE_GRANT in advertised
    auth = (everything_client.client_id, everything_client.secret)
    for grant_type in dict.fromkeys([*advertised, *KNOWN_GRANT_TYPES]):
        response = requests.post(
            metadata["token_endpoint"],
            data={"grant_type": grant_type},
            auth=auth,
            timeout=TIMEOUT,
        )
        error = response.json().get("error")
        if grant_type in advertised:
            # Missing parameters, not an unknown grant type.
            assert response.status_code in (200, 400), (grant_type, response.text)
            assert error != "unsupported_grant_type", grant_type
        else:
            assert response.status_code == 400, grant_type
            assert error == "unsupported_grant_type", (grant_type, response.text)


def test_client_credentials_as_advertised_issues_a_token(metadata, everything_client):
    response = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(everything_client.client_id, everything_client.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "response_type", ["code", "token", "id_token", "code id_token", "none"]
)
def test_authorize_accepts_exactly_the_advertised_response_types(
    metadata, issuer, everything_client, response_type
):
    params = {
        "response_type": response_type,
        "client_id": everything_client.client_id,
        "redirect_uri": everything_client.redirect_uri,
        "scope": "openid",
        "state": "s",
        "nonce": "n",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    with requests.Session() as browser:
        response = browser.get(
            metadata["authorization_endpoint"],
            params=params,
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    location = response.headers.get("Location", "")
    if response_type in metadata["response_types_supported"]:
        # Not signed in: sent to sign in, not turned away.
        assert response.status_code == 302
        assert "unsupported_response_type" not in location
    else:
        assert "error=unsupported_response_type" in location, location
        assert location.startswith(everything_client.redirect_uri)


def test_pkce_methods_other_than_the_advertised_are_refused(
    metadata, everything_client, person
):
    assert "plain" not in metadata["code_challenge_methods_supported"]
    params = {
        "response_type": "code",
        "client_id": everything_client.client_id,
        "redirect_uri": everything_client.redirect_uri,
        "scope": "openid",
        "state": "s",
        "code_challenge": "x" * 43,
        "code_challenge_method": "plain",
    }
    with requests.Session() as browser:
        walk = walk_authorize(browser, metadata["issuer"], params, account=person)
    assert walk.query["error"] == "invalid_request", walk.location


# -- (d) client authentication, per endpoint -----------------------------------------
def _credentials(method: str, confidential, public, audience: str):
    """(auth, form fields) presenting ``method``; the client fits the method."""
    if method == "client_secret_basic":
        return (confidential.client_id, confidential.secret), {}
    if method == "client_secret_post":
        return None, {
            "client_id": confidential.client_id,
            "client_secret": confidential.secret,
        }
    if method == "none":
        return None, {"client_id": public.client_id}
    # RFC 7523 §2.2: a signed JWT naming the client, with the HMAC secret
    # (client_secret_jwt) or a private key (private_key_jwt).
    now = int(time.time())
    claims = {
        "iss": confidential.client_id,
        "sub": confidential.client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(8),
        "iat": now,
        "exp": now + 60,
    }
    if method == "client_secret_jwt":
        assertion = jwt.encode(claims, confidential.secret, algorithm="HS256")
    else:
        assertion = jwt.encode(
            claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"
        )
    return None, {
        "client_id": confidential.client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:"
        "jwt-bearer",
        "client_assertion": assertion,
    }


# endpoint field -> (its auth-methods field, a request that passes once the
# client is authenticated, the status it then gets)
ENDPOINTS = {
    "token_endpoint": (
        "token_endpoint_auth_methods_supported",
        {"grant_type": "refresh_token", "refresh_token": "not-a-token"},
        400,  # invalid_grant: authenticated, the token is bad
    ),
    "revocation_endpoint": (
        "revocation_endpoint_auth_methods_supported",
        {"token": "not-a-token"},
        200,  # RFC 7009 §2.2
    ),
    "introspection_endpoint": (
        "introspection_endpoint_auth_methods_supported",
        {"token": "not-a-token"},
        200,  # RFC 7662 §2.2: {"active": false}
    ),
    # RFC 8628 §3.1: client authentication as at the token endpoint.
    "device_authorization_endpoint": (
        "token_endpoint_auth_methods_supported",
        {"scope": "openid"},
        200,
    ),
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_each_endpoint_accepts_exactly_its_advertised_auth_methods(
    metadata, everything_client, public_client, endpoint
):
    methods_field, data, authenticated_status = ENDPOINTS[endpoint]
    advertised = metadata[methods_field]
    assert set(advertised) <= set(AUTH_METHODS)
    url = metadata[endpoint]
    for method in AUTH_METHODS:
        auth, fields = _credentials(method, everything_client, public_client, url)
        response = requests.post(
            url, data={**fields, **data}, auth=auth, timeout=TIMEOUT
        )
        body = response.json() if response.content else {}  # RFC 7009 §2.2
        if method in advertised:
            assert response.status_code == authenticated_status, (method, body)
            assert body.get("error") != "invalid_client", method
        else:
            assert response.status_code == 401, (method, response.text)
            assert body["error"] == "invalid_client", method


def test_discovery_is_built_once_per_process(app):
    services = app.extensions["latchkey"]
    first = app.test_client().get(OPENID).get_data(as_text=True)
    assert first == services.discovery_json
    assert json.loads(first)["issuer"] == services.settings.issuer
