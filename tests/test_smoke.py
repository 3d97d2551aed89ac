def test_discovery_names_the_issuer(client, base_env):
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json["issuer"] == base_env["LATCHKEY_ISSUER"]


def test_live_server_serves_jwks(live_server):
    import requests

    keys = requests.get(live_server.url + "/jwks.json", timeout=5).json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256"}
    assert all(k["kid"] for k in keys)
