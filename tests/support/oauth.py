"""The checks a relying party makes, written once for every test: PKCE
(RFC 7636), at_hash (OIDC Core §3.1.3.6) and JWTs verified against the
published JWKS, ID tokens per OIDC Core §3.1.3.7.

Keys come from the server as a relying party gets them: a PyJWT JWKS client
on the jwks_uri discovery names (``jwks_client``), or the JWKS document
itself (a dict) where a test talks to the in-process app. Never from
Latchkey's own key ring: the tests check its signatures, not trust them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import jwt
import requests

TIMEOUT = 10
# What Latchkey signs with (OIDC Core §15.1: RS256; ES256 per client).
JWT_ALGS = ("ES256", "RS256")
# Claims every JWT Latchkey issues carries (RFC 7519 §4.1; RFC 9068 §2.2;
# OIDC Core §2; Back-Channel Logout §2.4).
REGISTERED = ("iss", "aud", "exp", "iat")
# OIDC Core §3.1.3.7 step 10: how far in the future an iat may be, for
# claims another library already verified (clocks of one machine).
IAT_LEEWAY = 5

Keys = jwt.PyJWKClient | dict


# -- PKCE (RFC 7636) -----------------------------------------------------------
def b64url(raw: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636 §4.1-4.2: 64
    unreserved characters of 48 random bytes, and their SHA-256."""
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


# -- hashes the ID token carries -----------------------------------------------
def at_hash(access_token: str, alg: str = "RS256") -> str:
    """OIDC Core §3.1.3.6: the left half of the hash the JWS ``alg`` names
    (SHA-256 for RS256, ES256, PS256), base64url. Computed here rather than
    trusted from the server. Raises AssertionError for an unknown alg."""
    family, bits = alg[:2], alg[2:]
    assert family in ("RS", "ES", "PS"), alg
    assert bits in ("256", "384", "512"), alg
    digest = hashlib.new(f"sha{bits}", access_token.encode()).digest()
    return b64url(digest[: len(digest) // 2])


# -- JWTs against the published keys -------------------------------------------
def jwks_client(base_url: str) -> jwt.PyJWKClient:
    """A JWKS client for the jwks_uri discovery names (not a guessed path)."""
    discovery = requests.get(
        base_url + "/.well-known/openid-configuration", timeout=TIMEOUT
    ).json()
    return jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=True)


def published_key(token: str, keys: Keys) -> jwt.PyJWK:
    """The one published key the token's ``kid`` names (RFC 7515 §4.1.4).

    A JWKS client fetches again once if the kid is new to it (a key
    published since, RFC 7517 §5). Raises AssertionError unless exactly one
    key has that kid.
    """
    kid = jwt.get_unverified_header(token)["kid"]
    if isinstance(keys, jwt.PyJWKClient):
        found = [k for k in keys.get_signing_keys() if k.key_id == kid]
        if not found:
            found = [k for k in keys.get_signing_keys(refresh=True) if k.key_id == kid]
    else:
        found = [jwt.PyJWK(k) for k in keys["keys"] if k.get("kid") == kid]
    assert len(found) == 1, f"{len(found)} published keys have kid {kid}"
    return found[0]


def verified_claims(
    token: str,
    keys: Keys,
    issuer: str,
    audience: str,
    require=(),
    *,
    alg: str | None = None,
    typ: str | None = None,
) -> dict:
    """Claims of ``token`` once PyJWT has verified its signature with the
    published key its kid names, using that key's algorithm only (RFC 8725
    §3.1), and checked iss, aud, exp and iat (RFC 7519 §4.1).

    ``alg`` and ``typ`` (RFC 8725 §3.11), when given, must be the header's
    exactly; ``require`` names claims that must be present besides iss, aud,
    exp and iat. Raises AssertionError or a jwt.InvalidTokenError.
    """
    header = jwt.get_unverified_header(token)
    key = published_key(token, keys)
    assert header["alg"] == key.algorithm_name, (header, key.algorithm_name)
    assert header["alg"] in JWT_ALGS, header
    if alg is not None:
        assert header["alg"] == alg, header
    if typ is not None:
        assert header.get("typ") == typ, header
    return jwt.decode(
        token,
        key,
        algorithms=[key.algorithm_name],
        audience=audience,
        issuer=issuer,
        options={"require": [*REGISTERED, *require]},
    )


def verify_jwt(
    token: str,
    keys: Keys,
    issuer: str,
    audience: str,
    require=(),
    *,
    alg: str | None = None,
    typ: str | None = None,
) -> dict:
    """``verified_claims`` for a token about a subject (an access token,
    RFC 9068 §2.2, or an ID token): ``sub`` is required too."""
    return verified_claims(
        token, keys, issuer, audience, ("sub", *require), alg=alg, typ=typ
    )


# -- ID tokens (OIDC Core §3.1.3.7) --------------------------------------------
def verify_id_token(
    id_token: str,
    keys: Keys,
    issuer: str,
    client_id: str,
    *,
    nonce: str | None = None,
    access_token: str | None = None,
    require=(),
    alg: str | None = None,
    typ: str | None = None,
) -> dict:
    """The claims of ``id_token`` after every check OIDC Core §3.1.3.7 asks
    of a relying party: the signature with a key from jwks_uri (step 6),
    then ``check_id_token_claims`` (iss, aud, azp, exp, iat, and the
    ``nonce`` and ``access_token``'s at_hash when given).

    ``require`` names further claims that must be present; ``alg`` and
    ``typ`` the header's. Raises AssertionError or a jwt.InvalidTokenError.
    """
    header = jwt.get_unverified_header(id_token)
    if nonce is not None:
        require = ("nonce", *require)
    if access_token is not None:
        require = ("at_hash", *require)
    claims = verify_jwt(id_token, keys, issuer, client_id, require, alg=alg, typ=typ)
    check_id_token_claims(
        claims,
        issuer,
        client_id,
        nonce=nonce,
        access_token=access_token,
        alg=header["alg"],
    )
    return claims


def check_id_token_claims(
    claims: dict,
    issuer: str,
    client_id: str,
    *,
    nonce: str | None = None,
    access_token: str | None = None,
    alg: str = "RS256",
) -> dict:
    """OIDC Core §3.1.3.7 steps 2-5 and 9-11 on claims whose signature is
    already verified (here or by another relying party library); §3.1.3.8
    at_hash when an ``access_token`` came with the ID token, which then
    must carry it. Returns ``claims``; raises AssertionError."""
    assert claims["iss"] == issuer  # step 2: exactly
    audiences = [claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"]
    assert client_id in audiences, audiences  # step 3
    if len(audiences) > 1:
        assert "azp" in claims  # step 4
    if "azp" in claims:
        assert claims["azp"] == client_id  # step 5
    assert claims["sub"]  # §2: REQUIRED
    now = time.time()
    assert claims["exp"] > now  # step 9
    assert claims["iat"] <= now + IAT_LEEWAY  # step 10
    if nonce is not None:
        assert claims["nonce"] == nonce  # step 11
    if access_token is not None:
        assert claims["at_hash"] == at_hash(access_token, alg)  # §3.1.3.8
    return claims
