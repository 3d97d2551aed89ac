"""SigningKey: a JOSE key whose private part is encrypted with the KEK, and
the one-row version every process polls to see changes to the key ring."""

from datetime import datetime

from sqlalchemy import JSON, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.base import UTCDateTime, utcnow

# The JWS algorithms (RFC 7518 §3.1) the key ring keeps a current key for.
SUPPORTED_ALGS = ("ES256", "RS256")
# OIDC Core §15.1 makes RS256 mandatory to implement, OIDC Dynamic Client
# Registration §2 makes it the default id_token_signed_response_alg, and
# RFC 9068 §2.1 makes it the one every resource server supports.
DEFAULT_ALG = "RS256"


class SigningKey(Model):
    """A key is published in the JWKS from creation until ``expires_at``
    (or ``revoked_at``), and signs from ``activates_at`` until ``retired_at``.
    Pre-publication (activates_at later than created_at) lets every process
    and every relying party's JWKS cache learn a key before anything it
    signs reaches them."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(8))
    public_jwk: Mapped[dict] = mapped_column(JSON)
    private_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activates_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When its successor takes over signing; the key stays in the JWKS until
    # expires_at so that tokens it signed still verify.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Withdrawn by an operator (a compromise): out of the JWKS, and tokens it
    # signed fail verification, at once.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SigningKeyState(Model):
    """One row (id 1) whose ``version`` every change to the key ring bumps
    in the same transaction. Processes compare it with the version they
    loaded: one primary-key read tells them whether to reload."""

    __tablename__ = "signing_key_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
