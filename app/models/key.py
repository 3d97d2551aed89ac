"""SigningKey: a JOSE key whose private part is encrypted with the KEK."""

from datetime import datetime

from sqlalchemy import JSON, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

# The JWS algorithms (RFC 7518 §3.1) the key ring keeps a current key for.
SUPPORTED_ALGS = ("ES256", "RS256")
# OIDC Core §15.1 makes RS256 mandatory to implement, OIDC Dynamic Client
# Registration §2 makes it the default id_token_signed_response_alg, and
# RFC 9068 §2.1 makes it the one every resource server supports.
DEFAULT_ALG = "RS256"


class SigningKey(db.Model):
    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(8))
    public_jwk: Mapped[dict] = mapped_column(JSON)
    private_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when a newer key takes over signing; the key stays in the JWKS until
    # expires_at so that tokens it signed still verify.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
