"""Encryption at rest with the key-encryption key (KEK), which is never stored
in the database: private signing keys, TOTP secrets, upstream client secrets;
and keys derived from it for one purpose each (refresh-token successors)."""

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class KeyEncryption:
    """AES-256-GCM with a purpose string bound in as associated data, so a
    ciphertext made for one purpose cannot be replayed as another."""

    def __init__(self, kek: bytes):
        self._aead = AESGCM(kek)

    def encrypt(self, plaintext: bytes, purpose: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, purpose.encode())

    def decrypt(self, blob: bytes, purpose: str) -> bytes:
        """Raises cryptography.exceptions.InvalidTag on a wrong key or purpose."""
        return self._aead.decrypt(blob[:12], blob[12:], purpose.encode())


def derive_key(kek: bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose, derived from the KEK with HKDF-SHA256
    (RFC 5869), ``purpose`` as its info label: never stored, never the KEK
    itself, and a different key for every purpose."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()
    ).derive(kek)
