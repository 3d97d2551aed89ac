"""Client credentials grant (RFC 6749 §4.4) with JWT access tokens whose
subject is the client itself (RFC 9068 §2.2)."""

import jwt
import pytest
import requests

from tests.flows.helpers import TIMEOUT, assert_json_error
from tests.support.oauth import verify_jwt


@pytest.fixture
def service(factories):
    return factories.client(machine=True)


def _grant(base_url, client, method, **extra):
    data = {"grant_type": "client_credentials", **extra}
    auth = None
    if method == "basic":
        auth = (client.client_id, client.secret)
    else:
        data.update(client_id=client.client_id, client_secret=client.secret)
    return requests.post(base_url + "/token", data=data, auth=auth, timeout=TIMEOUT)


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_token_verifies_against_jwks(
    base_url, issuer, jwks, service, method
):
    response = _grant(base_url, service, method)
    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["Cache-Control"]
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert "refresh_token" not in token  # RFC 6749 §4.4.3
    assert "id_token" not in token
    assert 0 < token["expires_in"] <= 600

    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    claims = verify_jwt(
        token["access_token"],
        jwks,
        issuer,
        service.client_id,
        require=["client_id", "jti"],
    )
    assert claims["sub"] == service.client_id
    assert claims["client_id"] == service.client_id
    assert 0 < claims["exp"] - claims["iat"] <= 600
    assert "gid" not in claims


def test_client_credentials_scope_is_limited_to_what_was_asked(
    base_url, issuer, jwks, factories
):
    client = factories.client(machine=True, scopes=["email"])
    response = _grant(base_url, client, "basic", scope="email")
    assert response.status_code == 200, response.text
    claims = verify_jwt(response.json()["access_token"], jwks, issuer, client.client_id)
    assert claims["scope"] == "email"

    refused = _grant(base_url, client, "basic", scope="email admin")
    assert_json_error(refused, 400, "invalid_scope")

    # A known scope the client is not registered for is not granted.
    narrowed = _grant(base_url, client, "basic", scope="openid email")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "email"
    claims = verify_jwt(narrowed.json()["access_token"], jwks, issuer, client.client_id)
    assert claims["scope"] == "email"


def test_client_credentials_token_is_not_a_userinfo_token(base_url, service):
    token = _grant(base_url, service, "basic").json()["access_token"]
    response = requests.get(
        base_url + "/userinfo",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert "Traceback" not in response.text


@pytest.mark.parametrize("method", ["basic", "post"])
def test_wrong_secret_is_invalid_client(base_url, service, method):
    service.secret = "not-" + service.secret
    response = _grant(base_url, service, method)
    assert_json_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].lower().startswith("basic")


def test_public_client_cannot_use_client_credentials(base_url, factories):
    public = factories.client(public=True)
    response = requests.post(
        base_url + "/token",
        data={"grant_type": "client_credentials", "client_id": public.client_id},
        timeout=TIMEOUT,
    )
    assert_json_error(response, 401, "invalid_client")


def test_public_client_cannot_register_for_client_credentials(factories):
    from app.clients.services import InvalidClientMetadata

    with pytest.raises(InvalidClientMetadata):
        factories.client(public=True, grant_types=["client_credentials"])
