"""Sign-in throttling: the failure limits on the password and second-factor
steps, and the notice that tells an owner someone is guessing.

The counting itself is app.web.ratelimits; this module says what is
counted (failed attempts per address, per email typed, per pending account)
and what happens when a limit is reached: the owner hears about it by email
once per window, however many attempts are refused.
"""

import logging
import time
from functools import partial

from flask import request, session
from flask_limiter import RequestLimit
from sqlalchemy.exc import SQLAlchemyError

from app.accounts.services import find_account
from app.extensions import db
from app.mail.notices import notify_guessing
from app.models import Account
from app.unit_of_work import commit_early
from app.web.events import request_who
from app.web.ratelimits import (
    address_key,
    attempt_limit,
    failed_attempt,
    failure_limit,
    ip_key,
    typed_email_key,
)
from app.web.sessions import load_current_session
from app.web.signin import PENDING_SECOND_FACTOR

log = logging.getLogger(__name__)

PASSWORD_STEP = "password"
SECOND_FACTOR_STEP = "second_factor"

# The failure limits' names (LATCHKEY_RATELIMIT_* settings, app/config.py).
LOGIN_IP = "login_ip"
LOGIN_ACCOUNT = "login_account"
SECOND_FACTOR = "second_factor"
MAIL_ADDRESS = "mail_address"
MAIL_IP = "mail_ip"


def wrong_password() -> None:
    """A sign-in password was wrong: it counts under the per-address and
    per-email limits (the latter shared with /federation/link-existing)."""
    failed_attempt(LOGIN_IP, LOGIN_ACCOUNT)


def wrong_second_factor() -> None:
    """A TOTP or recovery code at the second sign-in step was wrong."""
    failed_attempt(SECOND_FACTOR)


def mail_sent() -> None:
    """A form queued mail to an address a stranger may have typed: it
    counts under the shared mail limits (below)."""
    failed_attempt(MAIL_ADDRESS, MAIL_IP)


def _pending_account_key() -> str:
    pending = session.get(PENDING_SECOND_FACTOR) or {}
    return str(pending.get("account_id") or "none")


def tell_owner(account: Account, step: str, limit: RequestLimit) -> None:
    """Tell the owner someone is guessing (notify_guessing: the email and
    its event, once per window of ``limit``), committed early since the 429
    that follows rolls the request back. A failure to do so is logged: the
    429 answer matters more."""
    window = limit.limit.get_expiry()
    try:
        notify_guessing(
            account, request_who(), step, window, str(int(time.time() // window))
        )
        commit_early("owner told of a rate limit that answers 429")
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not queue the sign-in throttling notice")


def _password_limit_reached(limit: RequestLimit) -> None:
    account = find_account(request.form.get("email", ""))
    if account is not None and account.is_active:
        tell_owner(account, PASSWORD_STEP, limit)


def _second_factor_limit_reached(limit: RequestLimit) -> None:
    account_id = _pending_account_key()
    account = db.session.get(Account, account_id) if account_id != "none" else None
    if account is not None and account.is_active:
        tell_owner(account, SECOND_FACTOR_STEP, limit)


# Failed sign-ins per address, and per email typed: an unknown email is
# limited exactly like a known one, so the answer reveals no account.
login_ip_limit = failure_limit(LOGIN_IP, ip_key)
login_account_limit = failure_limit(
    LOGIN_ACCOUNT,
    typed_email_key,
    on_breach=_password_limit_reached,
)
# Wrong TOTP or recovery codes per pending account: the count lives on the
# server, where replaying an old session cookie cannot reset it.
second_factor_limit = failure_limit(
    SECOND_FACTOR,
    _pending_account_key,
    on_breach=_second_factor_limit_reached,
)
# Reset requests send mail: every request counts, per email typed (so one
# mailbox cannot be flooded) and per address.
reset_address_limit = attempt_limit("reset_address", typed_email_key)
reset_ip_limit = attempt_limit("reset_ip", ip_key)


# Every other form that sends mail to an address a stranger may have typed
# (sign-up, email change, "send the verification again") is limited in the
# mails it sends, per recipient and per client address, with one budget
# shared by all of them: switching forms buys no more mail. Counted like a
# failure limit (a unit taken before the view, kept only when the view says
# mail_sent()), so a form sent back with errors costs nothing, and parallel
# requests never send more than the limit.
def _own_address_key() -> str:
    current = load_current_session()
    return address_key(current.account.email) if current else "-"


signup_mail_limit = failure_limit(MAIL_ADDRESS, typed_email_key)
email_change_mail_limit = failure_limit(
    MAIL_ADDRESS, partial(typed_email_key, "new_email")
)
resend_mail_limit = failure_limit(MAIL_ADDRESS, _own_address_key)
mail_ip_limit = failure_limit(MAIL_IP, ip_key)
