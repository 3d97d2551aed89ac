"""The JOSE Header of a JWT someone else sent us, checked for shape before
any of its members is used.

Every JWT Latchkey did not make itself (an access token at /userinfo or
/introspect, an id_token_hint, an upstream ID token or logout token) is
attacker-controlled until its signature is verified, and choosing the key
to verify with reads the header first. A ``kid`` that is a list or an
``alg`` that is a number must be refused here, not reach a dict lookup.
"""

import base64
import binascii
import json

MAX_JWT_CHARS = 8192
# Header members that bring their own key, or a URL to fetch one from. Keys
# come only from our key ring or the provider's configured JWKS (RFC 8725
# §3.10: never trust a key named by the token itself).
KEY_BEARING_MEMBERS = ("jku", "jwk", "x5u", "x5c")
# Members whose value, when present, must be a string (RFC 7515 §4.1).
STRING_MEMBERS = ("alg", "kid", "typ", "cty")


class UntrustedJWTRejected(ValueError):
    """The token is not a compact JWS with a usable JOSE Header."""


def _b64url_json(segment: str):
    padded = segment + "=" * (-len(segment) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        return json.loads(raw)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise UntrustedJWTRejected("header is not base64url JSON") from exc


def checked_header(token, algorithms) -> dict:
    """The JOSE Header of ``token`` (a compact JWS, RFC 7515 §7.1) if every
    member we read has the right type, else UntrustedJWTRejected.

    ``alg`` must be one of ``algorithms`` (never "none": RFC 8725 §3.1);
    ``kid``, ``typ`` and ``cty`` must be strings when present; ``crit`` is
    refused, since we implement no extension (RFC 7515 §4.1.11: a recipient
    that does not understand a listed extension MUST reject the JWS); and
    members that carry or point to a key are refused (KEY_BEARING_MEMBERS).
    """
    if not isinstance(token, str) or not token or len(token) > MAX_JWT_CHARS:
        raise UntrustedJWTRejected("missing or oversized")
    segments = token.split(".")
    if len(segments) != 3:
        # A JWE has five segments; nothing here accepts encrypted tokens.
        raise UntrustedJWTRejected("not a compact JWS")
    header = _b64url_json(segments[0])
    if not isinstance(header, dict):
        raise UntrustedJWTRejected("header is not a JSON object")
    for name in STRING_MEMBERS:
        if name in header and not isinstance(header[name], str):
            raise UntrustedJWTRejected(f"header member {name} is not a string")
    alg = header.get("alg")
    if alg is None or alg.lower() == "none" or alg not in algorithms:
        raise UntrustedJWTRejected("algorithm not accepted")
    if "crit" in header:
        raise UntrustedJWTRejected("critical header extensions are not supported")
    if any(name in header for name in KEY_BEARING_MEMBERS):
        raise UntrustedJWTRejected("the token may not name its own key")
    return header
