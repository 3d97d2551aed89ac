"""Compact JWS (RFC 7515 §7.1) for the two algorithms Latchkey signs with,
straight on ``cryptography``'s key objects.

The token endpoint signs one JWT per grant and introspection and
revocation verify one per call; a general JOSE library spends more time on
registries, header checks and key lookups than the signature itself takes.
Keys are still generated, stored and published by joserfc (app/keys/ring.py);
only signing and checking a signature happen here.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ES256_SIZE = 32  # RFC 7518 §3.4: R and S, 32 octets each for P-256
_ECDSA = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()


class BadSignature(Exception):
    """The JWS is malformed or its signature does not verify."""


def b64url(data: bytes) -> bytes:
    """RFC 7515 §2 base64url, without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(data: bytes) -> bytes:
    """The octets of an unpadded base64url string; raises BadSignature."""
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("not base64url") from exc


def encode_part(value: dict) -> bytes:
    """A header or claims set as its JWS segment: compact JSON, base64url."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def sign(signing_input: bytes, alg: str, private_key) -> bytes:
    """The JWS Signature of ``signing_input`` (RFC 7518 §3.3 RS256, §3.4
    ES256: the raw R || S, not DER)."""
    if alg == "ES256":
        r, s = decode_dss_signature(private_key.sign(signing_input, _ECDSA))
        return r.to_bytes(ES256_SIZE, "big") + s.to_bytes(ES256_SIZE, "big")
    if alg == "RS256":
        return private_key.sign(signing_input, _PKCS1, hashes.SHA256())
    raise ValueError(f"unsupported alg {alg}")


def compact(header_segment: bytes, claims: dict, alg: str, private_key) -> str:
    """``header.claims.signature`` with a header already encoded."""
    signing_input = header_segment + b"." + encode_part(claims)
    signature = sign(signing_input, alg, private_key)
    return (signing_input + b"." + b64url(signature)).decode("ascii")


def verify(token: str, alg: str, public_key) -> dict:
    """The claims of a compact JWS whose signature ``public_key`` verifies
    with ``alg``; raises BadSignature. The caller has checked the header."""
    try:
        data = token.encode("ascii")
    except UnicodeError as exc:
        raise BadSignature("not a compact JWS") from exc
    signing_input, _, signature_segment = data.rpartition(b".")
    signature = b64url_decode(signature_segment)
    try:
        if alg == "ES256":
            if len(signature) != 2 * ES256_SIZE:
                raise BadSignature("wrong signature length")
            der = encode_dss_signature(
                int.from_bytes(signature[:ES256_SIZE], "big"),
                int.from_bytes(signature[ES256_SIZE:], "big"),
            )
            public_key.verify(der, signing_input, _ECDSA)
        elif alg == "RS256":
            public_key.verify(signature, signing_input, _PKCS1, hashes.SHA256())
        else:
            raise BadSignature(f"unsupported alg {alg}")
    except InvalidSignature as exc:
        raise BadSignature("signature does not verify") from exc
    payload = signing_input.partition(b".")[2]
    try:
        claims = json.loads(b64url_decode(payload))
    except ValueError as exc:
        raise BadSignature("claims are not JSON") from exc
    if not isinstance(claims, dict):
        raise BadSignature("claims are not a JSON object")
    return claims
