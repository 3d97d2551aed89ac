"""Which algorithm signs what, per the specifications: a client registered
without an ID-token algorithm gets RS256 (OIDC Dynamic Client Registration
§2; OIDC Core §15.1), ES256 stays available per client, and access tokens
are RS256 (RFC 9068 §2.1) unless LATCHKEY_ACCESS_TOKEN_ALG says ES256.

Every signature is checked by PyJWT against the keys at discovery's
jwks_uri, never by Latchkey's own code.
"""

import pytest

from app import create_app
from app.config import ConfigError, load_settings
from tests.flows.helpers import tokens_for, userinfo
from tests.support.oauth import verify_id_token, verify_jwt


def test_a_client_registered_without_an_algorithm_gets_rs256_id_tokens(
    base_url, issuer, person, factories, browser, jwks, metadata
):
    client = factories.client()  # no id_token_alg given
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    token = tokens_for(browser, base_url, person, client)
    claims = verify_id_token(
        token["id_token"], jwks, issuer, client.client_id, alg="RS256", typ="JWT"
    )
    assert claims["sub"] == person.id


def test_es256_stays_available_per_client(
    base_url, issuer, person, factories, browser, jwks, metadata
):
    assert "ES256" in metadata["id_token_signing_alg_values_supported"]
    client = factories.client(id_token_alg="ES256")
    token = tokens_for(browser, base_url, person, client)
    claims = verify_id_token(
        token["id_token"], jwks, issuer, client.client_id, alg="ES256", typ="JWT"
    )
    assert claims["sub"] == person.id


def test_access_tokens_are_rs256_by_default(
    base_url, issuer, person, factories, browser, jwks
):
    # RFC 9068 §2.1: RS256 is the one algorithm every resource server has.
    client = factories.client(id_token_alg="ES256")  # the client's choice
    token = tokens_for(browser, base_url, person, client)  # is for ID tokens only
    claims = verify_jwt(
        token["access_token"], jwks, issuer, client.client_id, alg="RS256", typ="at+jwt"
    )
    assert claims["client_id"] == client.client_id
    assert userinfo(base_url, token["access_token"]).status_code == 200


def test_access_token_algorithm_is_a_setting(app, base_env, factories, issuer, jwks):
    es256 = create_app({**base_env, "LATCHKEY_ACCESS_TOKEN_ALG": "ES256"})
    machine = factories.client(machine=True)
    response = es256.test_client().post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(machine.client_id, machine.secret),
    )
    assert response.status_code == 200, response.text
    claims = verify_jwt(
        response.json["access_token"],
        jwks,
        issuer,
        machine.client_id,
        alg="ES256",
        typ="at+jwt",
    )
    assert claims["sub"] == machine.client_id


@pytest.mark.parametrize("value", ["HS256", "none", "rs256", ""])
def test_an_unknown_access_token_algorithm_is_refused(value, tmp_path):
    with pytest.raises(ConfigError, match="LATCHKEY_ACCESS_TOKEN_ALG"):
        load_settings(
            {"LATCHKEY_ENV": "testing", "LATCHKEY_ACCESS_TOKEN_ALG": value},
            instance_path=str(tmp_path),
        )


def test_every_claim_released_is_advertised(
    base_url, issuer, person, factories, browser, jwks, metadata
):
    client = factories.client()
    token = tokens_for(browser, base_url, person, client, scope="openid profile email")
    id_claims = verify_id_token(
        token["id_token"], jwks, issuer, client.client_id, alg="RS256", typ="JWT"
    )
    info = userinfo(base_url, token["access_token"]).json()
    supported = set(metadata["claims_supported"])
    assert set(id_claims) <= supported, set(id_claims) - supported
    assert set(info) <= supported, set(info) - supported
    assert {"name", "email", "email_verified"} <= set(info)
