"""Asking a signed-in person to prove it is still them before a sensitive
change (recovery codes, adding a factor, deactivating the account).

A stolen or forgotten-open session must not be enough to change how the
account signs in: the session has to be fresh, or the password typed again.
Every "type your password again" check of the site is ``password_confirmed``
here (sign-in itself is app.accounts.services.check_password): each wrong
password is a REAUTH_FAILURE event and a failure under the one shared
``reauth`` limit, whichever form it came through.
"""

from flask import current_app

from app.accounts.totp import use_recovery_code
from app.events.services import EventTag
from app.models.base import utcnow
from app.web.events import record_request_event
from app.web.ratelimits import failed_attempt, failure_limit
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
    # SSO only, nothing typed: not a guess, just the page asking to re-prove
    # it upstream (reauth_views); no event, still a refusal.
    guessed = current.account.password_hash is not None or bool(password)
    refuse(current, action, guessed=guessed)
    return False


def refuse(current: CurrentSession, action: str, guessed: bool = True) -> None:
    """A re-authentication for ``action`` was refused: it counts under the
    shared ``reauth`` limit, and a guess (a wrong password or code; not a
    form sent empty) is recorded as a REAUTH_FAILURE event (kept by the
    request-end commit: the refusal is answered with a page, not raised),
    so guessing through any form shows in the account's history."""
    failed_attempt(REAUTH)
    if not guessed:
        return
    record_request_event(
        EventTag.REAUTH_FAILURE,
        current.account.id,
        device_id=current.device.id,
        action=action,
    )


def factor_removal_confirmed(
    current: CurrentSession, password: str | None, recovery_code: str | None
) -> str | None:
    """The proof asked before turning 2FA off: "password" or
    "recovery_code" for what worked (a recovery code is spent in the
    caller's transaction), or None, the refusal recorded as ``refuse``
    does.

    Removing a factor always needs a proof, however fresh the session: a
    hijacked session must not be able to strip the second factor. A wrong
    password beside a right recovery code is not a refusal.
    """
    passwords = current_app.extensions["latchkey"].passwords
    if password and passwords.verify(current.account.password_hash, password):
        return "password"
    if recovery_code and use_recovery_code(current.account, recovery_code):
        return "recovery_code"
    refuse(current, "disable_totp")
    return None


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


# Every view that asks for the password (or a code) again is limited by it.
# A session thief could otherwise guess the password (or a recovery code)
# through these forms at speed. Only refusals (``refuse``) count, per
# account: LATCHKEY_RATELIMIT_REAUTH, counted as app.web.ratelimits explains.
REAUTH = "reauth"
reauth_limit = failure_limit(REAUTH, _account_key)
