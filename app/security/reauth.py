"""Asking a signed-in person to prove it is still them before a sensitive
change (recovery codes, adding a factor, deactivating the account).

A stolen or forgotten-open session must not be enough to change how the
account signs in: the session has to be fresh, or the password typed again.
"""

from flask import current_app

from app.models.base import utcnow
from app.security.ratelimits import failure_limit
from app.security.sessions import CurrentSession, client_ip, load_current_session


def needs_reauth(current: CurrentSession) -> bool:
    """True when the sign-in is older than LATCHKEY_REAUTH_MAX_AGE seconds."""
    max_age = current_app.config["LATCHKEY"].reauth_max_age
    return (utcnow() - current.auth_time).total_seconds() > max_age


def confirmed(current: CurrentSession, password: str | None) -> bool:
    """True if the session is fresh or ``password`` is the account's.

    An account with no password (SSO only) can only confirm by signing in
    again; the argon2 work is the same either way.
    """
    if not needs_reauth(current):
        return True
    passwords = current_app.extensions["latchkey"].passwords
    return passwords.verify(current.account.password_hash, password or "")


def _account_key() -> str:
    current = load_current_session()
    return current.account.id if current else client_ip()


# A session thief could otherwise guess the password (or a recovery code)
# through these forms at speed. Only refusals (401) count, per account:
# LATCHKEY_RATELIMIT_REAUTH, counted as app.security.ratelimits explains.
reauth_limit = failure_limit(
    "reauth", _account_key, lambda response: response.status_code == 401
)
