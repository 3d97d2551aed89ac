"""Encryption at rest with the key-encryption key (KEK), which is never stored
in the database: private signing keys, TOTP secrets, upstream client secrets."""

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


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
