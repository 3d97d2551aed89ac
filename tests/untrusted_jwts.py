"""Malformed JWTs, for every place that reads a JWT it did not make.

Each variant is a compact JWS whose payload would pass if it were signed,
broken in one way only: one JOSE Header member of the wrong type or value,
or the token's own shape. The signature is random, so none of them is ever
valid; the point is what the server answers (a 4xx, never a 500).
"""

import json
import secrets
import time

from tests.support.oauth import b64url


def _segment(value) -> str:
    return b64url(json.dumps(value).encode())


def _signature() -> str:
    return b64url(secrets.token_bytes(64))


def header_variants(kid: str, typ: str, alg="ES256", wrong_typ="JWT") -> dict:
    """name -> JOSE Header, each with one member wrong; ``kid`` is a real key
    id so that only the broken member can be the reason for refusal."""
    good = {"alg": alg, "kid": kid, "typ": typ}
    fake_key = {"kty": "EC", "crv": "P-256", "x": b64url(b"x" * 32), "y": "y"}
    changes = {
        "kid-list": {"kid": [kid]},
        "kid-number": {"kid": 7},
        "kid-object": {"kid": {"kid": kid}},
        "kid-null": {"kid": None},
        "kid-unknown": {"kid": "no-such-key"},
        "alg-none": {"alg": "none"},
        "alg-None": {"alg": "None"},
        "alg-unknown": {"alg": "XYZ512"},
        "alg-hmac": {"alg": "HS256"},
        "alg-number": {"alg": 256},
        "alg-list": {"alg": [alg]},
        "alg-missing": {"alg": None},
        "typ-wrong": {"typ": wrong_typ},
        "typ-number": {"typ": 1},
        "typ-list": {"typ": [typ]},
        "typ-object": {"typ": {}},
        "cty-number": {"cty": 5},
        "crit": {"crit": ["exp"]},
        "crit-not-list": {"crit": "exp"},
        "jku": {"jku": "https://attacker.example/jwks.json"},
        "x5u": {"x5u": "https://attacker.example/cert.pem"},
        "jwk": {"jwk": fake_key},
        "x5c": {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    }
    variants = {}
    for name, change in changes.items():
        header = {**good, **change}
        variants[name] = {k: v for k, v in header.items() if v is not None}
    return variants


def bad_tokens(kid: str, typ: str, claims: dict, alg="ES256", wrong_typ="JWT"):
    """name -> malformed token string (header variants and shape variants)."""
    body = _segment(claims)
    tokens = {
        f"header-{name}": f"{_segment(header)}.{body}.{_signature()}"
        for name, header in header_variants(kid, typ, alg, wrong_typ).items()
    }
    good_head = _segment({"alg": alg, "kid": kid, "typ": typ})
    tokens.update(
        {
            "header-json-array": f"{_segment([alg, kid])}.{body}.{_signature()}",
            "header-json-string": f"{_segment('x')}.{body}.{_signature()}",
            "header-json-number": f"{_segment(1)}.{body}.{_signature()}",
            "header-not-json": f"{b64url(b'nope')}.{body}.{_signature()}",
            "header-not-utf8": f"{b64url(bytes([255, 254]))}.{body}.{_signature()}",
            "header-not-base64": f"!!!$$$.{body}.{_signature()}",
            "payload-not-json": f"{good_head}.{b64url(b'nope')}.{_signature()}",
            "payload-json-array": f"{good_head}.{_segment([1])}.{_signature()}",
            "two-segments": f"{good_head}.{body}",
            "four-segments": f"{good_head}.{body}.{_signature()}.x",
            "five-segments-jwe": f"{good_head}.x.x.x.x",
            "only-dots": "..",
            "non-ascii": "é.é.é",
            "spaces": f"{good_head} .{body}. {_signature()}",
            "huge": f"{good_head}.{b64url(b'x' * 9000)}.{_signature()}",
        }
    )
    return tokens


def plausible_claims(issuer: str, audience: str, **extra) -> dict:
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": "someone",
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        **extra,
    }
