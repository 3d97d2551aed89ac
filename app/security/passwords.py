"""Password hashing with argon2id, with OWASP's parameters by default."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordService:
    """Hashes and checks human passwords.

    ``verify`` spends the same argon2 work whether or not an account exists,
    so that neither the answer nor its timing reveals registered emails.
    """

    def __init__(self, time_cost=2, memory_kib=19 * 1024, parallelism=1):
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # A hash of a value nobody knows, checked when the email is unknown.
        self._dummy_hash = self.hasher.hash("latchkey-dummy-password-never-used")

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; with no hash, same work, then False."""
        target = password_hash or self._dummy_hash
        try:
            ok = self.hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)
