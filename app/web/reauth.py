"""Asking a signed-in person to prove it is still them before a sensitive
change (recovery codes, adding a factor, deactivating the account).

A stolen or forgotten-open session must not be enough to change how the
account signs in: the session has to be fresh, or the password typed again.
"""

from flask import current_app

from app.events.services import EventTag
from app.models.base import utcnow
from app.web.events import record_request_event
from app.web.ratelimits import failure_limit
from app.web.sessions import CurrentSession, client_ip, load_current_session


def needs_reauth(current: CurrentSession) -> bool:
    """True when the sign-in is older than LATCHKEY_REAUTH_MAX_AGE seconds."""
    max_age = current_app.config["LATCHKEY"].reauth_max_age
    return (utcnow() - current.auth_time).total_seconds() > max_age


def password_confirmed(
    current: CurrentSession, password: str | None, action: str
) -> bool:
    """True if ``password`` is the account's. A wrong one is recorded as an
    event (kept: the refusal is an answer, not an exception), so guessing
    through any form shows in the account's history. An account with no
    password (SSO only) never matches; the argon2 work is the same either way."""
    passwords = current_app.extensions["latchkey"].passwords
    if passwords.verify(current.account.password_hash, password or ""):
        return True
    if current.account.password_hash is None and not password:
        # SSO only, nothing typed: not a guess, just the page asking to
        # re-prove it upstream (reauth_views); no event, still a refusal.
        return False
    record_request_event(
        EventTag.REAUTH_FAILURE,
        current.account.id,
        device_id=current.device.id,
        action=action,
    )
    return False


def reauth_error(current: CurrentSession) -> str:
    """What to tell a person whose re-authentication was refused."""
    if current.account.password_hash is None:
        return "Confirm it is you first, then try again."
    return "That password is not right."


def mark_reauthenticated(current: CurrentSession, amr: list[str]) -> None:
    """The person just proved it is them again (password, second factor or
    a fresh upstream sign-in): the session counts as a new sign-in from now
    (OIDC Core §2: auth_time is when the person last authenticated), with
    the methods used added to its ``amr``."""
    current.session.auth_time = utcnow()
    current.session.amr = sorted(set(current.session.amr or []) | set(amr))


def confirmed(current: CurrentSession, password: str | None, action: str) -> bool:
    """True if the session is fresh or ``password`` is the account's (see
    password_confirmed)."""
    return not needs_reauth(current) or password_confirmed(current, password, action)


def _account_key() -> str:
    current = load_current_session()
    return current.account.id if current else client_ip()


# Views that call confirmed/password_confirmed answer a wrong password
# with 401. A session thief could otherwise guess the password (or a
# recovery code) through these forms at speed. Only refusals (401) count, per account:
# LATCHKEY_RATELIMIT_REAUTH, counted as app.web.ratelimits explains.
reauth_limit = failure_limit(
    "reauth", _account_key, lambda response: response.status_code == 401
)
