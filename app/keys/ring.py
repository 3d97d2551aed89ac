"""Signing keys as a cluster-wide fact.

The database holds every key and when each one is published, signs, retires
and expires; every process derives the same JWKS and the same signing key
from those rows and the clock. A process notices a change by reading one
small value, ``signing_key_state.version``, at most every
LATCHKEY_SIGNING_KEY_CHECK_SECONDS, and on every introspection and UserInfo
call inside the statement those run anyway (version_column/still_valid), so
that a revoked key stops verifying there at once. Rotation pre-publishes
the next key for LATCHKEY_SIGNING_KEY_PREPUBLISH seconds, longer than the
check interval plus the JWKS cache lifetime, so no process signs with a key
that another process (or a relying party's cached JWKS) does not have yet.

Processes never create keys: ``flask keys`` does, once, as a deploy step
(app/keys/admin.py holds the operator actions).
"""

import json
import math
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select

from app.extensions import db
from app.keys import jws
from app.models import SigningKey, SigningKeyState
from app.models.key import DEFAULT_ALG, SUPPORTED_ALGS
from app.security.crypto import KeyEncryption
from app.security.jose import UntrustedJWTRejected, checked_header

__all__ = ["DEFAULT_ALG", "SUPPORTED_ALGS", "InvalidJWT", "KeyRing", "NoSigningKey"]
PURPOSE = "signing-key"


class InvalidJWT(Exception):
    """A JWT that is malformed, not ours, or fails its signature."""


class NoSigningKey(RuntimeError):
    """The database holds no current key for an algorithm: the deploy step
    ``flask keys`` has not run (workers never create keys)."""


def import_private(alg: str, data: dict):
    return (ECKey if alg == "ES256" else RSAKey).import_key(data)


@lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> bytes:
    # RFC 7515 §4.1: the same protected header for every token of a key and
    # type, so it is encoded once.
    return jws.encode_part({"typ": typ, "alg": alg, "kid": kid})


def _ts(value) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(frozen=True)
class _Key:
    kid: str
    alg: str
    key: object
    public: dict
    activates: float
    retires: float | None
    expires: float | None

    def signs_at(self, now: float) -> bool:
        return self.activates <= now and (self.retires is None or now < self.retires)


@dataclass(frozen=True)
class _View:
    """What one process serves, derived from the rows of one version."""

    version: int | None = None
    keys: tuple = ()
    signing: dict = field(default_factory=dict)  # alg -> (kid, key)
    verifying: dict = field(default_factory=dict)  # kid -> (alg, key)
    jwks_json: str = '{"keys": []}'
    valid_until: float = math.inf  # next activation, retirement or expiry


def _build(version, keys, now: float) -> _View:
    live = [k for k in keys if k.expires is None or now < k.expires]
    signing = {}
    # The newest key that has activated and not retired signs; ordering by
    # activation makes every process pick the same one from the same rows.
    for k in sorted(live, key=lambda k: k.activates):
        if k.signs_at(now):
            signing[k.alg] = (k.kid, k.key)
    moments = [
        t
        for k in live
        for t in (k.activates, k.retires, k.expires)
        if t is not None and t > now
    ]
    return _View(
        version=version,
        keys=tuple(live),
        signing=signing,
        verifying={k.kid: (k.alg, k.key) for k in live},
        # Pre-published keys are in the JWKS before they sign (RFC 7517 §5).
        jwks_json=json.dumps({"keys": [k.public for k in live]}),
        valid_until=min(moments, default=math.inf),
    )


class KeyRing:
    """The process's view of the signing keys.

    Signing uses the key each algorithm's rows say signs now; verification
    and the JWKS use every key that is neither expired nor revoked.
    """

    def __init__(
        self,
        encryption: KeyEncryption,
        overlap_seconds: int,
        prepublish_seconds: int = 120,
        check_seconds: float = 5,
    ):
        self.encryption = encryption
        self.overlap_seconds = overlap_seconds
        self.prepublish_seconds = prepublish_seconds
        self._check_seconds = check_seconds
        self._lock = threading.Lock()
        self._view = _View()
        self._next_check = 0.0
        self._decrypted: dict[str, object] = {}

    # -- keeping up with the database -------------------------------------
    def _current(self, fresh: bool = False) -> _View:
        view = self._view
        now = time.monotonic()
        # A fresh worker's concurrent first requests all wait for a loaded
        # view (version None): none may sign with the empty one.
        if fresh or view.version is None or now >= self._next_check:
            version = db.session.execute(
                select(SigningKeyState.version).where(SigningKeyState.id == 1)
            ).scalar_one_or_none()
            self._next_check = now + self._check_seconds
            version = version or 0
            if version != view.version:
                with self._lock:
                    view = self._view
                    if version != view.version:
                        view = self._view = self._load(version)
        wall = time.time()
        if wall >= view.valid_until:
            view = self._view = _build(view.version, view.keys, wall)
        return view

    def _load(self, version: int) -> _View:
        rows = db.session.execute(
            select(SigningKey).where(SigningKey.revoked_at.is_(None))
        ).scalars()
        keys = []
        for row in rows:
            key = self._decrypted.get(row.kid)
            if key is None:
                # Decrypted once per process, not per request.
                private = json.loads(
                    self.encryption.decrypt(row.private_encrypted, PURPOSE)
                )
                key = self._decrypted[row.kid] = import_private(row.alg, private)
            public = {**row.public_jwk, "kid": row.kid, "alg": row.alg, "use": "sig"}
            keys.append(
                _Key(
                    row.kid,
                    row.alg,
                    key,
                    public,
                    row.activates_at.timestamp(),
                    _ts(row.retired_at),
                    _ts(row.expires_at),
                )
            )
        return _build(version, keys, time.time())

    def reload(self) -> None:
        """Read the database now (after this process changed the keys)."""
        self._current(fresh=True)

    # -- use --------------------------------------------------------------
    def jwks_json(self) -> str:
        """The JWKS (RFC 7517 §5) as JSON text; reads the database when the
        check interval has passed. Needs an app context."""
        return self._current().jwks_json

    def jwks_json_if_checked(self) -> str | None:
        """The JWKS as ``jwks_json`` would give it, when that needs no
        database read (the version was checked less than the check
        interval ago and no key activated, retired or expired since);
        else None. Needs no app context."""
        view = self._view
        if (
            view.version is None
            or time.monotonic() >= self._next_check
            or time.time() >= view.valid_until
        ):
            return None
        return view.jwks_json

    def signing_algorithms(self) -> tuple[str, ...]:
        """The algorithms that have a key signing now."""
        return tuple(a for a in SUPPORTED_ALGS if a in self._current().signing)

    def ready(self) -> bool:
        """True when every supported algorithm has a key to sign with."""
        return len(self.signing_algorithms()) == len(SUPPORTED_ALGS)

    def sign(self, claims: dict, alg=DEFAULT_ALG, typ="JWT") -> str:
        """A compact JWS of ``claims`` with the key that signs ``alg`` now.

        Raises NoSigningKey when the deploy step has made no key.
        """
        try:
            kid, key = self._current().signing[alg]
        except KeyError:
            raise NoSigningKey(f"no {alg} signing key; run `flask keys`") from None
        return jws.compact(_header_segment(alg, kid, typ), claims, alg, key.private_key)

    def verify(self, token: str, typ: str | None = None) -> dict:
        """Signature-checked claims of ``token``; raises InvalidJWT.

        The header's shape is checked before any member is used (see
        security/jose.py), so no input makes this raise anything else.
        Does not check exp/iss/aud: callers decide what those must be.
        """
        return self.verify_with_kid(token, typ)[0]

    def verify_with_kid(self, token: str, typ: str | None = None):
        """(claims, kid) of ``token`` as verify() checks it, for callers
        that confirm the key against the database afterwards (still_valid)."""
        try:
            header = checked_header(token, SUPPORTED_ALGS)
        except UntrustedJWTRejected as exc:
            raise InvalidJWT(str(exc)) from exc
        view = self._current()
        kid = header.get("kid")
        if kid not in view.verifying:
            view = self._current(fresh=True)  # rotated elsewhere a moment ago
        if kid not in view.verifying:
            raise InvalidJWT("unknown key")
        alg, key = view.verifying[kid]
        if header["alg"] != alg:
            raise InvalidJWT("algorithm does not match key")
        if typ is not None and header.get("typ", "").lower() != typ:
            raise InvalidJWT("wrong token type")
        try:
            return jws.verify(token, alg, key.public_key), kid
        except jws.BadSignature as exc:
            raise InvalidJWT("bad signature") from exc

    @staticmethod
    def version_column():
        """The key ring's version as a scalar subquery, to add to a statement
        the caller runs anyway: the check then costs no extra round trip."""
        return (
            select(SigningKeyState.version)
            .where(SigningKeyState.id == 1)
            .scalar_subquery()
        )

    def still_valid(self, kid: str, version: int | None) -> bool:
        """Whether ``kid`` is still published at the database's ``version``
        (read with version_column()). A revoked key fails here in every
        process on the very next introspection or UserInfo call."""
        view = self._view
        if (version or 0) != view.version:
            view = self._current(fresh=True)
        return kid in view.verifying
