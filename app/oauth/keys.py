"""Signing keys: generated on first start, private parts encrypted with the
KEK, decrypted once per process and again only when a rotation is seen."""

import json
import threading
import time
from datetime import timedelta

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import func, select

from app.extensions import db
from app.models import SigningKey
from app.models.base import utcnow
from app.models.key import DEFAULT_ALG, SUPPORTED_ALGS
from app.security.crypto import KeyEncryption
from app.security.jose import UntrustedJWTRejected, checked_header

_PURPOSE = "signing-key"
RELOAD_CHECK_SECONDS = 30


class InvalidJWT(Exception):
    """A JWT that is malformed, not ours, or fails its signature."""


def _generate(alg: str):
    if alg == "ES256":
        return ECKey.generate_key("P-256", auto_kid=True)
    return RSAKey.generate_key(2048, auto_kid=True)


def _import(alg: str, data: dict):
    return (ECKey if alg == "ES256" else RSAKey).import_key(data)


class KeyRing:
    """The process's view of the signing keys.

    Signing uses the newest unretired key of each algorithm; verification and
    the JWKS use every key that has not expired. Another process's rotation
    is picked up within RELOAD_CHECK_SECONDS, or at once when a token names
    a kid we have not seen.
    """

    def __init__(self, encryption: KeyEncryption, overlap_seconds: int):
        self._encryption = encryption
        self._overlap = overlap_seconds
        self._lock = threading.Lock()
        self._fingerprint = None
        self._checked_at = 0.0
        self._signing: dict[str, object] = {}
        self._verifying: dict[str, object] = {}
        self._jwks_json = "{}"

    # -- loading --------------------------------------------------------
    def _db_fingerprint(self):
        return tuple(
            db.session.execute(
                select(
                    func.count(SigningKey.id),
                    func.max(SigningKey.id),
                    func.count(SigningKey.retired_at),
                )
            ).one()
        )

    def ensure_keys(self) -> None:
        """Create a key for each supported algorithm if none is current."""
        for alg in SUPPORTED_ALGS:
            current = db.session.execute(
                select(SigningKey.id).where(
                    SigningKey.alg == alg, SigningKey.retired_at.is_(None)
                )
            ).first()
            if current is None:
                self._create(alg)
        db.session.commit()

    def _create(self, alg: str) -> SigningKey:
        key = _generate(alg)
        row = SigningKey(
            kid=key.kid,
            alg=alg,
            public_jwk=key.as_dict(private=False),
            private_encrypted=self._encryption.encrypt(
                json.dumps(key.as_dict(private=True)).encode(), _PURPOSE
            ),
        )
        db.session.add(row)
        return row

    def _refresh(self, force=False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < RELOAD_CHECK_SECONDS:
            return
        fingerprint = self._db_fingerprint()
        self._checked_at = now
        if fingerprint == self._fingerprint and self._signing:
            return
        with self._lock:
            self._load()
            self._fingerprint = fingerprint

    def _load(self) -> None:
        now = utcnow()
        rows = (
            db.session.execute(select(SigningKey).order_by(SigningKey.id))
            .scalars()
            .all()
        )
        signing, verifying, public = {}, {}, []
        for row in rows:
            if row.expires_at is not None and row.expires_at <= now:
                continue
            private = json.loads(
                self._encryption.decrypt(row.private_encrypted, _PURPOSE)
            )
            key = _import(row.alg, private)
            verifying[row.kid] = (row.alg, key)
            public.append(
                {**row.public_jwk, "kid": row.kid, "alg": row.alg, "use": "sig"}
            )
            if row.retired_at is None:
                signing[row.alg] = (row.kid, key)
        if not all(alg in signing for alg in SUPPORTED_ALGS):
            self.ensure_keys()
            return self._load()
        self._signing, self._verifying = signing, verifying
        self._jwks_json = json.dumps({"keys": public})
        return None

    # -- use --------------------------------------------------------------
    def jwks_json(self) -> str:
        self._refresh()
        return self._jwks_json

    def sign(self, claims: dict, alg=DEFAULT_ALG, typ="JWT") -> str:
        self._refresh()
        kid, key = self._signing[alg]
        return jwt.encode({"alg": alg, "kid": kid, "typ": typ}, claims, key, [alg])

    def verify(self, token: str, typ: str | None = None) -> dict:
        """Signature-checked claims of ``token``; raises InvalidJWT.

        The header's shape is checked before any member is used (see
        security/jose.py), so no input makes this raise anything else.
        Does not check exp/iss/aud: callers decide what those must be.
        """
        try:
            header = checked_header(token, SUPPORTED_ALGS)
        except UntrustedJWTRejected as exc:
            raise InvalidJWT(str(exc)) from exc
        self._refresh()
        kid = header.get("kid")
        if kid not in self._verifying:
            self._refresh(force=True)
        if kid not in self._verifying:
            raise InvalidJWT("unknown key")
        alg, key = self._verifying[kid]
        if header["alg"] != alg:
            raise InvalidJWT("algorithm does not match key")
        if typ is not None and header.get("typ", "").lower() != typ:
            raise InvalidJWT("wrong token type")
        try:
            return jwt.decode(token, key, algorithms=[alg]).claims
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidJWT("bad signature") from exc

    # -- operator actions -----------------------------------------------
    def rotate(self, alg: str) -> SigningKey:
        """Retire the current ``alg`` key (kept in the JWKS for the overlap)
        and make a new one. Commits."""
        now = utcnow()
        for row in db.session.execute(
            select(SigningKey).where(
                SigningKey.alg == alg, SigningKey.retired_at.is_(None)
            )
        ).scalars():
            row.retired_at = now
            row.expires_at = now + timedelta(seconds=self._overlap)
        new = self._create(alg)
        db.session.commit()
        self._refresh(force=True)
        return new
