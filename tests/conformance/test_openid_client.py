"""Latchkey as an independent relying party sees it: panva's openid-client
(node), given only the issuer URL, runs every flow the discovery document
advertises, and each answer is checked against the RFC that defines it.

No endpoint path is written here: the RP takes every endpoint from
discovery, and the person (Chromium) follows links and redirects."""

import time

import pytest

from tests.conformance import person as the_person
from tests.conformance.relying_party import DEVICE_GRANT
from tests.support.chromium import answer_consent, submit_sign_in
from tests.support.oauth import check_id_token_claims

# Every endpoint discovery may name (OIDC Discovery 1.0 §3, RFC 8414 §2,
# RP-Initiated Logout 1.0 §2.1), and the test below that exercises it. A
# new *_endpoint in the metadata fails test_discovery_names_every_endpoint
# until a test here uses it.
EXERCISED_BY = {
    "authorization_endpoint": "test_code_flow_confidential_client",
    "token_endpoint": "test_code_flow_confidential_client",
    "jwks_uri": "test_code_flow_confidential_client",
    "userinfo_endpoint": "test_userinfo",
    "revocation_endpoint": "test_refresh_introspect_revoke",
    "introspection_endpoint": "test_refresh_introspect_revoke",
    "device_authorization_endpoint": "test_device_flow",
    "end_session_endpoint": "test_rp_initiated_logout",
}
# The endpoints a browser visits rather than the library (it builds the URL).
BROWSER_ENDPOINTS = {"authorization_endpoint", "end_session_endpoint"}
SCOPE = "openid profile email offline_access"


def _assert_id_token(result: dict, issuer: str, client, account, nonce=None):
    """The ID token the library verified (signature against jwks_uri, iss,
    aud, exp, iat, nonce), checked again here claim by claim (OIDC Core
    §2, §3.1.3.7) with the suite's one ID-token checker."""
    claims = result["id_token_claims"]
    header = result["id_token_header"]
    check_id_token_claims(
        claims,
        issuer,
        client.client_id,
        nonce=nonce,
        access_token=result["tokens"]["access_token"],  # §3.1.3.8 at_hash
        alg=header["alg"],
    )
    assert claims["sub"] == account.id
    # §3.1.3.7 step 6: signed with a key from jwks_uri, which the library
    # fetched to check it.
    assert header["kid"] in result["jwks_kids"]
    assert (
        header["alg"] in client.server_metadata["id_token_signing_alg_values_supported"]
    )
    return claims


def _signed_in(page, node_rp, client, account, scope=SCOPE) -> tuple[dict, dict]:
    walked = the_person.authorize(page, node_rp, client, account, scope)
    result = walked["result"]
    assert "error" not in result, result
    return walked["start"], result


def test_discovery_names_every_endpoint(issuer, web_app):
    """OIDC Discovery 1.0 §3 / RFC 8414 §2: what the library discovered."""
    meta = web_app.server_metadata
    assert meta["issuer"] == issuer  # §4.3: exactly the URL it was asked for
    for name in EXERCISED_BY:
        assert meta.get(name, "").startswith(issuer + "/"), name
    advertised = {k for k in meta if k.endswith("_endpoint") or k == "jwks_uri"}
    assert advertised <= set(EXERCISED_BY), advertised - set(EXERCISED_BY)
    assert set(meta["grant_types_supported"]) >= {
        "authorization_code",
        "refresh_token",
        "client_credentials",
        DEVICE_GRANT,
    }
    assert "code" in meta["response_types_supported"]
    assert "S256" in meta["code_challenge_methods_supported"]
    # OIDC Core §15.1: RS256 is mandatory to implement.
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    for endpoint in ("revocation", "introspection"):
        assert meta[f"{endpoint}_endpoint_auth_methods_supported"], endpoint


def test_code_flow_confidential_client(
    page, node_rp, issuer, web_app, resource_server, person
):
    """Authorization code + PKCE (RFC 6749 §4.1, RFC 7636) for a client that
    authenticates with client_secret_basic; OIDC Core §3.1."""
    start, result = _signed_in(page, node_rp, web_app, person)
    endpoint = web_app.server_metadata["authorization_endpoint"]
    assert start["url"].startswith(endpoint + "?")
    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "bearer"  # RFC 6749 §5.1
    assert tokens["expires_in"] > 0
    assert set(tokens["scope"].split()) == set(SCOPE.split())
    assert tokens["refresh_token"]  # offline_access (OIDC Core §11)
    claims = _assert_id_token(result, issuer, web_app, person, start["nonce"])
    # OIDC Registration §2: a client registered without an algorithm gets
    # RS256 ID tokens.
    assert result["id_token_header"]["alg"] == "RS256"
    assert "at_hash" in claims  # what §3.1.3.6 lets the RP check
    assert claims["email"] == person.email

    # RFC 6749 §4.1.2: the code works once. Going back to the same redirect
    # makes the library send it again; the server refuses.
    page.reload()
    page.wait_for_selector(the_person.BACK_AT_RP)
    replay = node_rp.result(start["state"])
    assert replay["error"]["error"] == "invalid_grant", replay
    # ... and SHOULD revoke what the code gave: the access token is dead.
    described = node_rp.call(
        "/tokenIntrospection",
        client_id=resource_server.client_id,
        token=tokens["access_token"],
    )
    assert described == {"active": False}


def test_code_flow_public_client(page, node_rp, issuer, native_app, person):
    """A public client (OIDC Core §9 "none"): the PKCE verifier is what binds
    the code to it (RFC 7636 §4.5); refresh works without a secret and
    rotates (RFC 9700 §4.14.2)."""
    # RFC 7636 §4.6: a verifier that does not match the challenge is refused.
    walked = the_person.authorize(
        page,
        node_rp,
        native_app,
        person,
        SCOPE,
        exchange_verifier="x" * 43,  # well-formed (§4.1) but not the one
    )
    assert walked["result"]["error"]["error"] == "invalid_grant", walked

    start, result = _signed_in(page, node_rp, native_app, person)
    _assert_id_token(result, issuer, native_app, person, start["nonce"])
    first = result["tokens"]

    refreshed = node_rp.call(
        "/refreshTokenGrant",
        client_id=native_app.client_id,
        refresh_token=first["refresh_token"],
    )
    second = refreshed["tokens"]
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]

    revoked = node_rp.call(
        "/tokenRevocation",
        client_id=native_app.client_id,
        token=second["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked == {"revoked": True}  # RFC 7009 §2.2: 200
    refused = node_rp.refused(
        "/refreshTokenGrant",
        client_id=native_app.client_id,
        refresh_token=second["refresh_token"],
    )
    assert refused["error"] == "invalid_grant"  # RFC 6749 §5.2


def test_es256_id_tokens_for_a_client_that_asks(
    page, node_rp, issuer, register, person
):
    """A client registered with id_token_signed_response_alg ES256 (OIDC
    Registration §2) gets ES256 ID tokens, which the library, told to expect
    ES256, verifies with the EC key from jwks_uri."""
    es256_app = register(
        redirect_uri=node_rp.redirect_uri,
        id_token_alg="ES256",
        metadata={"id_token_signed_response_alg": "ES256"},
        name="Conformance ES256 app",
    )
    start, result = _signed_in(page, node_rp, es256_app, person, scope="openid")
    assert result["id_token_header"]["alg"] == "ES256"
    _assert_id_token(result, issuer, es256_app, person, start["nonce"])


def test_userinfo(page, node_rp, issuer, web_app, person):
    """OIDC Core §5.3: the claims of the token's scope, for the same sub."""
    _start, result = _signed_in(page, node_rp, web_app, person)
    access_token = result["tokens"]["access_token"]
    info = node_rp.call(
        "/fetchUserInfo",
        client_id=web_app.client_id,
        access_token=access_token,
        sub=person.id,  # §5.3.2: the library checks sub matches the ID token
    )
    assert info["sub"] == person.id
    assert info["email"] == person.email
    assert info["email_verified"] is True
    assert info["name"] == "Ada Lovelace"


def test_refresh_introspect_revoke(
    page, node_rp, issuer, web_app, resource_server, person
):
    """Refresh (RFC 6749 §6, OIDC Core §12), introspection by a resource
    server (RFC 7662), revocation (RFC 7009)."""
    _start, result = _signed_in(page, node_rp, web_app, person)
    first = result["tokens"]
    first_claims = result["id_token_claims"]

    refreshed = node_rp.call(
        "/refreshTokenGrant",
        client_id=web_app.client_id,
        refresh_token=first["refresh_token"],
    )
    tokens = refreshed["tokens"]
    assert tokens["access_token"] != first["access_token"]
    assert tokens["refresh_token"] != first["refresh_token"]
    assert set(tokens["scope"].split()) == set(SCOPE.split())  # §6: not wider
    if "id_token" in tokens:
        # OIDC Core §12.2: same iss, sub, aud; auth_time of the sign-in.
        claims = _assert_id_token(refreshed, issuer, web_app, person)
        if "auth_time" in first_claims:
            assert claims["auth_time"] == first_claims["auth_time"]

    def introspect(token, hint=None):
        body = {"client_id": resource_server.client_id, "token": token}
        if hint:
            body["token_type_hint"] = hint
        return node_rp.call("/tokenIntrospection", **body)

    # RFC 7662 §2.2: a live token is active, with what it was issued for.
    live = introspect(tokens["access_token"], "access_token")
    assert live["active"] is True
    assert live["client_id"] == web_app.client_id
    assert live["sub"] == person.id
    assert set(live["scope"].split()) == set(SCOPE.split())
    assert live["exp"] > time.time()
    if "iss" in live:
        assert live["iss"] == issuer
    assert introspect(tokens["refresh_token"])["active"] is True
    # Made-up tokens are inactive, with nothing else said (§2.2).
    assert introspect("not-a-token") == {"active": False}

    # RFC 7009 §2.1: revoking the refresh token ends it, and (as the server
    # revokes access tokens too) the access tokens of the same grant.
    assert node_rp.call(
        "/tokenRevocation",
        client_id=web_app.client_id,
        token=tokens["refresh_token"],
        token_type_hint="refresh_token",
    ) == {"revoked": True}
    assert introspect(tokens["refresh_token"]) == {"active": False}
    assert introspect(tokens["access_token"]) == {"active": False}
    refused = node_rp.refused(
        "/refreshTokenGrant",
        client_id=web_app.client_id,
        refresh_token=tokens["refresh_token"],
    )
    assert refused["error"] == "invalid_grant"
    # RFC 6750 §3.1: a revoked access token is an invalid_token at userinfo.
    refused = node_rp.refused(
        "/fetchUserInfo",
        client_id=web_app.client_id,
        access_token=tokens["access_token"],
        sub=person.id,
    )
    assert refused["status"] == 401
    assert refused["challenge_error"] == "invalid_token"
    # RFC 7009 §2.2: an unknown or already revoked token is still a 200.
    assert node_rp.call(
        "/tokenRevocation", client_id=web_app.client_id, token=tokens["refresh_token"]
    ) == {"revoked": True}


def test_access_token_revocation(page, node_rp, web_app, resource_server, person):
    """RFC 7009 §2.1 with token_type_hint=access_token: that token ends at
    once; the refresh token of the grant may go on."""
    _start, result = _signed_in(page, node_rp, web_app, person)
    tokens = result["tokens"]
    node_rp.call(
        "/tokenRevocation",
        client_id=web_app.client_id,
        token=tokens["access_token"],
        token_type_hint="access_token",
    )
    dead = node_rp.call(
        "/tokenIntrospection",
        client_id=resource_server.client_id,
        token=tokens["access_token"],
    )
    assert dead == {"active": False}


def test_client_credentials(node_rp, issuer, register, resource_server):
    """RFC 6749 §4.4: a client acting for itself; no refresh token (§4.4.3)
    and no ID token (no person). Authenticates with client_secret_post,
    the other method discovery advertises (RFC 6749 §2.3.1)."""
    service = register(
        auth_method="client_secret_post",
        machine=True,
        name="Conformance batch job",
    )
    assert (
        "client_secret_post"
        in (service.server_metadata["token_endpoint_auth_methods_supported"])
    )
    result = node_rp.call("/clientCredentialsGrant", client_id=service.client_id)
    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"]
    assert "refresh_token" not in tokens
    assert "id_token" not in tokens
    described = node_rp.call(
        "/tokenIntrospection",
        client_id=resource_server.client_id,
        token=tokens["access_token"],
    )
    assert described["active"] is True
    assert described["client_id"] == service.client_id


def test_client_credentials_refused_once_the_client_is_deleted(node_rp, register, app):
    """A client the server's workers keep in memory (app/clients/cache.py)
    and the operator then deletes with `flask clients delete` is refused
    at openid-client's very next grant: invalid_client (RFC 6749 §5.2)."""
    service = register(machine=True, name="Conformance job, deleted")
    for _ in range(4):  # both workers of the live server keep the client
        node_rp.call("/clientCredentialsGrant", client_id=service.client_id)
    deleted = app.test_cli_runner().invoke(
        args=["clients", "delete", service.client_id, "--yes"]
    )
    assert deleted.exit_code == 0, deleted.output
    for _ in range(4):
        refused = node_rp.refused(
            "/clientCredentialsGrant", client_id=service.client_id
        )
        # RFC 6749 §5.2: 401, and a WWW-Authenticate challenge naming the
        # error, since the client authenticated with HTTP Basic.
        assert refused["status"] == 401, refused
        assert refused["challenge_error"] == "invalid_client", refused


def test_device_flow(page, node_rp, issuer, register, person):
    """RFC 8628: the device asks for codes, the person approves on another
    device (Chromium), the device's polling gets tokens, once."""
    tv = register(
        auth_method="none",
        device=True,
        name="Conformance TV",
    )
    started = node_rp.call(
        "/initiateDeviceAuthorization", client_id=tv.client_id, scope=SCOPE
    )
    # §3.2: the device authorization response.
    for field in ("device_code", "user_code", "verification_uri"):
        assert isinstance(started[field], str), field
        assert started[field], field
    assert started["expires_in"] > 0
    # §3.5: before the person decides, the answer is authorization_pending.
    pending = node_rp.refused(
        "/deviceCodeGrantOnce",
        client_id=tv.client_id,
        device_code=started["device_code"],
    )
    assert pending["error"] == "authorization_pending"

    # §3.3: the person goes to the verification URI, signs in, types the
    # code as people do (lower case, a space for the dash) and approves.
    page.goto(started["verification_uri"])
    page.wait_for_selector(the_person.SIGN_IN)
    submit_sign_in(page, person)
    page.fill("#user_code", started["user_code"].lower().replace("-", " "))
    page.click("#continue")
    answer_consent(page)
    page.wait_for_selector("#result")

    # §3.4-3.5: the library polls at the interval and gets the tokens.
    result = node_rp.call(
        "/pollDeviceAuthorizationGrant",
        client_id=tv.client_id,
        device_code=started["device_code"],
    )
    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["refresh_token"]
    _assert_id_token(result, issuer, tv, person)

    # The device code is spent: asking again is invalid_grant (RFC 6749 §5.2).
    replay = node_rp.refused(
        "/deviceCodeGrantOnce",
        client_id=tv.client_id,
        device_code=started["device_code"],
    )
    assert replay["error"] == "invalid_grant"


def test_device_flow_denied(page, node_rp, register, person):
    """RFC 8628 §3.5: when the person says no, the device is told
    access_denied."""
    tv = register(
        auth_method="none",
        device=True,
        grant_types=[DEVICE_GRANT],
        name="Conformance TV",
    )
    started = node_rp.call(
        "/initiateDeviceAuthorization", client_id=tv.client_id, scope="openid"
    )
    page.goto(started["verification_uri"])
    page.wait_for_selector(the_person.SIGN_IN)
    submit_sign_in(page, person)
    page.fill("#user_code", started["user_code"])
    page.click("#continue")
    answer_consent(page, approve=False)
    page.wait_for_selector("#result")
    denied = node_rp.refused(
        "/deviceCodeGrantOnce",
        client_id=tv.client_id,
        device_code=started["device_code"],
    )
    assert denied["error"] == "access_denied"


def test_consent_denied(page, node_rp, web_app, person):
    """RFC 6749 §4.1.2.1: a refusal comes back to the redirect URI as
    access_denied, with the request's state and (RFC 9207) iss, which the
    library checks before it reports the error."""
    walked = the_person.authorize(page, node_rp, web_app, person, SCOPE, approve=False)
    error = walked["result"]["error"]
    assert error["name"] == "AuthorizationResponseError", error
    assert error["error"] == "access_denied"


def test_rp_initiated_logout(page, node_rp, issuer, web_app, person):
    """OIDC RP-Initiated Logout 1.0 §2-3: with an id_token_hint for this
    session the OP signs the person out and returns to the registered
    post_logout_redirect_uri with state."""
    _start, result = _signed_in(page, node_rp, web_app, person)
    built = node_rp.call(
        "/buildEndSessionUrl",
        client_id=web_app.client_id,
        id_token_hint=result["tokens"]["id_token"],
        post_logout_redirect_uri=node_rp.post_logout_redirect_uri,
        state="bye-123",
    )
    page.goto(built["url"])
    page.wait_for_selector(the_person.BACK_AT_RP)
    assert page.url.startswith(node_rp.post_logout_redirect_uri + "?")
    # §3: state comes back as the RP sent it.
    arrived = node_rp.activity()["signed_out"]
    assert "bye-123" in [query.get("state") for query in arrived]

    # The session has ended: a silent request (OIDC Core §3.1.2.6) now
    # comes back login_required.
    silent = node_rp.call(
        "/buildAuthorizationUrl",
        client_id=web_app.client_id,
        redirect_uri=node_rp.redirect_uri,
        scope="openid",
        prompt="none",
    )
    page.goto(silent["url"])
    page.wait_for_selector(the_person.BACK_AT_RP)
    answer = node_rp.result(silent["state"])
    assert answer["error"]["error"] == "login_required", answer


def test_every_advertised_endpoint_was_used(request, node_rp, web_app):
    """Runs last: every endpoint in discovery was reached by the library
    (or by the browser, for the two it only builds URLs for)."""
    ran = {item.name for item in request.session.items}
    if not set(EXERCISED_BY.values()) <= ran:
        pytest.fail("run the whole module: this test checks what the others did")
    meta = web_app.server_metadata
    activity = node_rp.activity()
    fetched = {entry["url"].split("?")[0] for entry in activity["fetched"]}
    for name in set(EXERCISED_BY) - BROWSER_ENDPOINTS:
        assert meta[name] in fetched, name
    opened = {entry["endpoint"]: entry["url"] for entry in activity["built"]}
    for name in BROWSER_ENDPOINTS:
        assert opened[name].startswith(meta[name] + "?"), name
