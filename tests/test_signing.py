"""The key ring's compact JWS (app/keys/jws.py): what it signs verifies
with an independent library against the published JWKS, and what it
accepts is only what it signed."""

import base64
import json

import jwt
import pytest

from app.keys.ring import InvalidJWT
from tests.support.oauth import published_key

CLAIMS = {"iss": "https://issuer.example", "sub": "someone", "exp": 2_000_000_000}


def _jwks_key(app, token):
    """The published key (the JWKS document) the token's kid names."""
    return published_key(token, json.loads(app.extensions["latchkey"].keys.jwks_json()))


def _segment(value: dict) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_signed_tokens_verify_elsewhere_and_here(app_ctx, alg):
    keys = app_ctx.extensions["latchkey"].keys
    token = keys.sign(dict(CLAIMS), alg, typ="at+jwt")
    # RFC 7515 §7.1 compact form, checked by PyJWT against the JWKS.
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    assert header["typ"] == "at+jwt"
    decoded = jwt.decode(token, _jwks_key(app_ctx, token), algorithms=[alg])
    assert decoded == CLAIMS
    assert keys.verify(token, typ="at+jwt") == CLAIMS


def test_only_what_was_signed_is_accepted(app_ctx):
    keys = app_ctx.extensions["latchkey"].keys
    token = keys.sign(dict(CLAIMS), "ES256", typ="at+jwt")
    head, payload, signature = token.split(".")
    forged_claims = _segment({**CLAIMS, "sub": "someone else"})
    rs256_header = _segment({**jwt.get_unverified_header(token), "alg": "RS256"})
    none_header = _segment({**jwt.get_unverified_header(token), "alg": "none"})
    refused = [
        f"{head}.{forged_claims}.{signature}",  # claims changed
        f"{head}.{payload}.{signature[:-4]}AAAA",  # signature changed
        f"{head}.{payload}.",  # no signature
        f"{rs256_header}.{payload}.{signature}",  # alg not the key's
        f"{none_header}.{payload}.",  # RFC 8725 §3.1: never "none"
        f"{_segment(['a list'])}.{payload}.{signature}",  # header not an object
        f"not-base64!.{payload}.{signature}",
        f"{head}.{payload}.{signature}.extra",
        "é.é.é",
    ]
    for candidate in refused:
        with pytest.raises(InvalidJWT):
            keys.verify(candidate, typ="at+jwt")
    with pytest.raises(InvalidJWT):  # RFC 9068 §4: the type must be at+jwt
        keys.verify(keys.sign(dict(CLAIMS), "ES256"), typ="at+jwt")
    array_claims = keys.sign([1, 2], "ES256", typ="at+jwt")  # type: ignore[arg-type]
    with pytest.raises(InvalidJWT):  # RFC 7519 §7.2: claims are a JSON object
        keys.verify(array_claims, typ="at+jwt")
