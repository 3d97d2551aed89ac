"""Random credentials and the only way they are stored: as SHA-256 hashes.

Every credential Latchkey hands out (session ids, codes, refresh tokens,
client secrets) is 256 bits from the OS CSPRNG. Guessing is hopeless, so a
fast hash is right; argon2 is for human passwords only.
"""

import hashlib
import secrets


def new_token() -> str:
    """A 256-bit random value, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_token(value: str) -> str:
    """Hex SHA-256 of ``value``: what the database keeps instead of it."""
    return hashlib.sha256(value.encode()).hexdigest()
