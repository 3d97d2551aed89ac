"""Two-factor authentication: TOTP (RFC 6238) and recovery codes.

The TOTP secret is encrypted under the KEK; the last accepted time step is
stored so that a code cannot be used twice; recovery codes are 80-bit random
values stored as SHA-256 and usable once.
"""

import hmac
import io
import secrets
from datetime import datetime

import pyotp
import segno
from sqlalchemy import delete, or_, select, update

from app.extensions import db, rowcount
from app.models import Account, RecoveryCode
from app.models.base import utcnow
from app.security.crypto import KeyEncryption
from app.security.tokens import hash_token

ISSUER_NAME = "Latchkey"
RECOVERY_CODE_COUNT = 10
_PURPOSE = "totp-secret"
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class TotpService:
    def __init__(self, encryption: KeyEncryption, valid_window: int = 1):
        self.encryption = encryption
        self.valid_window = valid_window

    @staticmethod
    def new_secret() -> str:
        return pyotp.random_base32(32)  # 160 bits, as RFC 4226 recommends

    def encrypt(self, secret: str) -> bytes:
        return self.encryption.encrypt(secret.encode(), _PURPOSE)

    def decrypt(self, blob: bytes) -> str:
        return self.encryption.decrypt(blob, _PURPOSE).decode()

    @staticmethod
    def provisioning_uri(secret: str, email: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER_NAME)

    @staticmethod
    def qr_svg(uri: str) -> str:
        """The enrolment QR code as inline SVG, rendered here (no service)."""
        out = io.BytesIO()
        segno.make(uri, error="m").save(
            out, kind="svg", scale=5, xmldecl=False, svgns=True, border=2
        )
        return out.getvalue().decode()

    def matching_step(self, secret: str, code: str, now: datetime) -> int | None:
        """The time step ``code`` belongs to (within ±valid_window), or None."""
        code = (code or "").strip().replace(" ", "")
        if not code.isdigit() or len(code) != 6:
            return None
        totp = pyotp.TOTP(secret)
        current = totp.timecode(now)
        for step in range(current - self.valid_window, current + self.valid_window + 1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None

    def verify(self, account: Account, code: str, now: datetime | None = None) -> bool:
        """Check a sign-in code and burn its time step. Commits nothing.

        RFC 6238 §5.2: a code is accepted once. The conditional UPDATE makes
        that hold across processes too.
        """
        if account.totp_secret_encrypted is None:
            return False
        step = self.matching_step(
            self.decrypt(account.totp_secret_encrypted), code, now or utcnow()
        )
        if step is None:
            return False
        burned = rowcount(
            db.session.execute(
                update(Account)
                .where(
                    Account.id == account.id,
                    or_(
                        Account.totp_last_step.is_(None), Account.totp_last_step < step
                    ),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            )
        )
        return burned == 1


def new_recovery_codes(account: Account) -> list[str]:
    """Replace the account's recovery codes; returns the new ones (shown once).
    No commit."""
    db.session.execute(
        delete(RecoveryCode).where(RecoveryCode.account_id == account.id)
    )
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
        codes.append(code)
        db.session.add(
            RecoveryCode(account_id=account.id, code_hash=hash_token(_normalize(code)))
        )
    return codes


def _normalize(code: str) -> str:
    return "".join(c for c in (code or "").lower() if c in _RECOVERY_ALPHABET)


def use_recovery_code(account: Account, code: str) -> bool:
    """Spend one recovery code; True if it was valid and unused. No commit."""
    normalized = _normalize(code)
    if len(normalized) != 16:
        return False
    row = db.session.execute(
        select(RecoveryCode).where(
            RecoveryCode.account_id == account.id,
            RecoveryCode.code_hash == hash_token(normalized),
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    spent = rowcount(
        db.session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
            .values(used_at=utcnow())
        )
    )
    return spent == 1


def remaining_recovery_codes(account: Account) -> int:
    return len(
        db.session.execute(
            select(RecoveryCode.id).where(
                RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )
