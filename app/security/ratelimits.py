"""Rate limits: how often an address, an account or a client may try.

Flask-Limiter keeps the counters, in Redis when LATCHKEY_REDIS_URL is set
(shared by every process) and in memory otherwise (the one-process trial).
With its fixed-window strategy each hit is one atomic step in the store: on
Redis the ``incr_expire.lua`` script of the ``limits`` package (INCRBY, and
EXPIRE on the first hit, in one script), in memory an increment under a
lock. Parallel requests therefore each see a different count, and no more
than the limit pass, however many processes serve them.

Most limits here count *failures* only (a wrong password, a wrong code).
Flask-Limiter's own ``deduct_when`` cannot do that safely: it tests the
counter before the view and adds to it after the response, so thirty
wrong passwords sent at once would all pass the test before the first one
was counted. A failure limit instead takes its unit up front, with the same
atomic hit, and gives it back after the response when the attempt turned
out not to be a failure (an atomic INCRBY -1). At every moment the counter
is at least the number of failures done or in flight, so never more than
the limit reach the password check.

Limits are read from the settings on every request (``LATCHKEY_RATELIMIT_*``,
see app/config.py), so each can be tuned or turned off without code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from flask import Response, current_app, request
from flask_limiter import RequestLimit
from limits.strategies import FixedWindowRateLimiter

from app.extensions import limiter
from app.security.sessions import client_ip
from app.security.tokens import hash_token

log = logging.getLogger(__name__)

# Keys of failure limits start with this, then the limit's name.
FAILURES = "failures"
_FAILED: dict[str, Callable[[Response], bool]] = {}


def configured_limit(name: str) -> str:
    """The limit string for ``name`` from the settings; "" when off."""
    settings = current_app.config["LATCHKEY"]
    if not settings.ratelimit_enabled:
        return ""
    return settings.ratelimit_limits.get(name, "")


def failure_limit(
    name: str,
    key_func: Callable[[], str],
    failed: Callable[[Response], bool],
    on_breach: Callable[[RequestLimit], None] | None = None,
):
    """A route decorator limiting the POSTs that fail, per ``key_func()``,
    to the configured limit ``name``; every view decorated with the same
    name draws on the same budget.

    ``failed(response)`` says whether an attempt was a failure; every other
    attempt (a success, a form error, a 429) is given back. ``on_breach``
    runs for each attempt refused.
    """
    _FAILED[name] = failed
    # One shared counter per limit name, whatever view it decorates: a
    # password guessed through five different forms is five guesses.
    return limiter.shared_limit(
        partial(configured_limit, name),
        scope=f"{FAILURES}:{name}",
        key_func=lambda: f"{FAILURES}:{name}:{key_func()}",
        methods=["POST"],
        on_breach=on_breach,
    )


def attempt_limit(name: str, key_func: Callable[[], str]):
    """A route decorator limiting every POST to a view per ``key_func()``."""
    return limiter.limit(
        partial(configured_limit, name),
        key_func=lambda: f"{name}:{key_func()}",
        methods=["POST"],
    )


def give_back_unfailed_attempts(response: Response) -> Response:
    """after_request hook: return the unit each failure limit took for this
    request unless the response says the attempt failed."""
    if not isinstance(limiter.limiter, FixedWindowRateLimiter):
        return response  # other strategies cannot give back; count everything
    for limit in limiter.current_limits:
        name = _failure_limit_name(limit)
        if name is None or _FAILED[name](response):
            continue
        try:
            limiter.limiter.storage.incr(limit.key, limit.limit.get_expiry(), amount=-1)
        except Exception:  # the store is away: the attempt just stays counted
            log.warning("could not give back a %s attempt", name, exc_info=True)
    return response


def _failure_limit_name(limit: RequestLimit) -> str | None:
    for arg in limit.request_args:
        if arg.startswith(f"{FAILURES}:"):
            name = arg.split(":", 2)[1]
            return name if name in _FAILED else None
    return None


def retry_after_seconds() -> int:
    """Seconds until the limit that refused this request lets it through."""
    limit = limiter.current_limit
    if limit is None:
        return 60
    try:
        return max(1, int(limit.reset_at - time.time()))
    except Exception:  # the store is away; any honest guess will do
        return 60


# -- keys -------------------------------------------------------------------
def ip_key() -> str:
    return client_ip() or "-"


def typed_email_key(field: str = "email") -> str:
    """The email typed into the form, trimmed and lower-cased as accounts
    store it, hashed: the same key whether or not an account has it, so a
    limit tells nothing about which accounts exist, and no address sits in
    Redis in the clear."""
    return address_key(request.form.get(field, ""))


def address_key(address: str) -> str:
    """An email address as a limit key: trimmed, lower-cased, hashed."""
    return hash_token(address.strip().lower()[:320])[:32]


def init_rate_limits(app) -> None:
    app.after_request(give_back_unfailed_attempts)
