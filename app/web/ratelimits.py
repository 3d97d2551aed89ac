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
atomic hit, and gives it back after the response unless the code that
judged the attempt said it failed (``failed_attempt(name)``, a mark on
``flask.g``; nothing is inferred from the response), with an atomic
INCRBY -1. At every moment the counter is at least the number of failures
done or in flight, so never more than the limit reach the password check.

A failure limit on a hot machine endpoint (the token endpoint) can be
*lazy*: while this process has seen no failure for a key within the
limit's window, requests for that key skip the store before the view (no
take, no give-back: two round trips to Redis saved on every successful
request; while it is the view's only limit, Flask-Limiter is not called
at all, since it would only find that limit exempt), and a failure is
counted with the same atomic hit once the view has judged it; when that
hit finds the limit already reached, the answer becomes the 429 instead
of the failure's own (RFC 6585 §4). So the failures answered as failures
are exactly as many as the limit allows, across every process. From a
key's first failure on, the process checks that key strictly, as above,
until a window passes without failures. What a lazy limit does not do is
refuse a *correct* attempt in a process that has not seen the key fail:
right for 256-bit client secrets and refresh tokens, which no limit is
what protects, wrong for passwords, whose limits stay strict.

Limits are read from the settings on every request (``LATCHKEY_RATELIMIT_*``,
see app/config.py), so each can be tuned or turned off without code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial, wraps

from flask import Response, current_app, g, has_request_context, request
from flask_limiter import RequestLimit
from flask_limiter.util import get_qualified_name
from limits import parse_many
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from app.extensions import limiter
from app.security.opaque_tokens import hash_token
from app.web.sessions import client_ip

log = logging.getLogger(__name__)

# Keys of failure limits start with this, then the limit's name.
FAILURES = "failures"
# The names of the failure limits declared, and the mark on flask.g that
# holds the names this request's attempt failed under.
_FAILURE_LIMITS: set[str] = set()
_FAILED_HERE = "failed_attempts"
# Lazy limits: (key prefix, limit name, key) -> monotonic time until which
# this process checks the key strictly, because it saw the key fail.
_FAILING: dict[tuple[str, str, str], float] = {}
_FAILING_MAX = 10_000
_LAZY: set[str] = set()
# The mark on flask.g: lazy limit name -> key, for keys that skipped the store.
_UNCHECKED = "unchecked_failure_limits"
# The mark on flask.g: when the lazy limit that refused this request resets.
_REFUSED_UNTIL = "lazy_limit_reset_at"


def configured_limit(name: str) -> str:
    """The limit string for ``name`` from the settings; "" when off."""
    settings = current_app.config["LATCHKEY"]
    if not settings.ratelimit_enabled:
        return ""
    return settings.ratelimit_limits.get(name, "")


def failure_limit(
    name: str,
    key_func: Callable[[], str],
    on_breach: Callable[[RequestLimit], None] | None = None,
    lazy: bool = False,
):
    """A route decorator limiting the POSTs that fail, per ``key_func()``,
    to the configured limit ``name``; every view decorated with the same
    name draws on the same budget.

    An attempt fails when the code that judged it calls
    ``failed_attempt(name)`` during the request; every other attempt (a
    success, a form error, a 429) is given back. ``on_breach`` runs for
    each attempt refused. ``lazy`` spares the store on the success path of
    keys that have not failed lately (see the module docstring).
    """
    _FAILURE_LIMITS.add(name)
    if lazy and on_breach is not None:
        raise ValueError("a lazy limit refuses after the view: no on_breach")
    # One shared counter per limit name, whatever view it decorates: a
    # password guessed through five different forms is five guesses.
    checked = limiter.shared_limit(
        partial(configured_limit, name),
        scope=_scope(name),
        key_func=lambda: f"{_scope(name)}:{key_func()}",
        methods=["POST"],
        on_breach=on_breach,
        exempt_when=partial(_unchecked, name, key_func) if lazy else None,
    )
    if not lazy:
        return checked
    _LAZY.add(name)

    def decorate(view):
        limited = checked(view)
        qualified_name = get_qualified_name(view)  # Flask-Limiter's key

        @wraps(view)
        def lazily_limited(*args, **kwargs):
            if _only_limit(qualified_name) and _unchecked(name, key_func):
                # Flask-Limiter would find this limit exempt and nothing
                # else to check, for ~85 µs of every token request.
                answer = current_app.ensure_sync(view)(*args, **kwargs)
            else:
                answer = limited(*args, **kwargs)
            key = g.get(_UNCHECKED, {}).pop(name, None)
            if key is not None and _failed(name) and not _count_failure(name, key):
                return current_app.handle_http_exception(TooManyRequests())
            return answer

        return lazily_limited

    return decorate


def failed_attempt(*names: str) -> None:
    """Say that this request's attempt failed under the failure limits
    ``names`` (a wrong password, a wrong code, a mail sent): their unit is
    kept instead of given back after the response. The one way a failure
    reaches the limiter; a name no view of this request is limited by
    costs nothing. Outside a request (a CLI command) it does nothing."""
    unknown = set(names) - _FAILURE_LIMITS
    if unknown:
        raise ValueError(f"no failure limit named {sorted(unknown)}")
    if has_request_context():
        g.setdefault(_FAILED_HERE, set()).update(names)


def _failed(name: str) -> bool:
    return name in g.get(_FAILED_HERE, ())


def _scope(name: str) -> str:
    return f"{FAILURES}:{name}"


def _unchecked(name: str, key_func: Callable[[], str]) -> bool:
    """exempt_when of a lazy limit: True (skip the store) unless this
    process saw ``key_func()`` fail within the window; the skipped key is
    kept in ``g`` so that a failure is counted after the response."""
    if request.method != "POST" or not configured_limit(name):
        return False
    key = f"{_scope(name)}:{key_func()}"
    failing_until = _FAILING.get((_prefix(), name, key))
    if failing_until is not None and failing_until > time.monotonic():
        return False
    g.setdefault(_UNCHECKED, {})[name] = key
    return True


def _prefix() -> str:
    # The prefix Flask-Limiter itself puts before every key (it keeps the
    # first app's; the config's is the same in a one-app process).
    prefix = getattr(limiter, "_key_prefix", None)
    if prefix is None:
        prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    return prefix


def _remember_failing(name: str, key: str, items) -> None:
    if len(_FAILING) >= _FAILING_MAX:
        _FAILING.clear()  # only makes keys lazy again: bounded, see above
    window = max(item.get_expiry() for item in items)
    _FAILING[(_prefix(), name, key)] = time.monotonic() + window


def _count_failure(name: str, key: str) -> bool:
    """Count a failure of the lazy limit ``name`` for ``key`` that skipped
    the store before the view, with the same atomic hit Flask-Limiter
    makes, and have this process check the key strictly from now on.
    False when the hit finds the limit already reached (the request is to
    be refused). When the store is away, counts in this process as
    Flask-Limiter does (``_fall_back``)."""
    items = parse_many(configured_limit(name))
    _remember_failing(name, key, items)
    prefix = [_prefix()] if _prefix() else []
    args = [*prefix, key, _scope(name)]
    try:
        over = [item for item in items if not limiter.limiter.hit(item, *args)]
        if over:
            g.setdefault(
                _REFUSED_UNTIL,
                limiter.limiter.get_window_stats(over[0], *args).reset_time,
            )
        return not over
    except Exception:
        log.warning("could not count a %s failure", name, exc_info=True)
        return _fall_back(items, args)


def _fall_back(items, args) -> bool:
    """Count in this process (the store is away); False when over the limit."""
    fallback = getattr(limiter, "_fallback_limiter", None)
    if fallback is None or not getattr(limiter, "_in_memory_fallback_enabled", False):
        return True
    limiter._storage_dead = True
    from app.metrics import note_fallback

    note_fallback(True)
    over = [item for item in items if not fallback.hit(item, *args)]  # hit each
    return not over


def attempt_limit(name: str, key_func: Callable[[], str]):
    """A route decorator limiting every POST to a view per ``key_func()``."""
    return limiter.limit(
        partial(configured_limit, name),
        key_func=lambda: f"{name}:{key_func()}",
        methods=["POST"],
    )


def give_back_unfailed_attempts(response: Response) -> Response:
    """after_request hook: return the unit each failure limit took for this
    request unless the attempt was said to fail (``failed_attempt``)."""
    if request.endpoint in UNLIMITED_ENDPOINTS:
        return response
    if not isinstance(limiter.limiter, FixedWindowRateLimiter):
        return response  # other strategies cannot give back; count everything
    for limit in limiter.current_limits:
        name = _failure_limit_name(limit)
        if name is None:
            continue
        if _failed(name):
            if name in _LAZY:
                _remember_failing(name, limit.request_args[-2], [limit.limit])
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
            return name if name in _FAILURE_LIMITS else None
    return None


def retry_after_seconds() -> int:
    """Seconds until the limit that refused this request lets it through."""
    refused_until = g.get(_REFUSED_UNTIL)
    if refused_until is not None:
        return max(1, int(refused_until - time.time()))
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


# Machine endpoints that no limit decorates. Flask-Limiter's request hooks
# would still resolve and evaluate (empty) limit lists, and build and reset
# its per-request context, for each of their requests: its three hooks skip
# them. tests/security/test_rate_limits.py checks that none is limited.
UNLIMITED_ENDPOINTS = frozenset(
    {
        "oauth.jwks",
        "oauth.discovery",
        "oauth.userinfo",
        "oauth_api.introspect",
        "oauth_api.revoke",
        "healthz",
        "readyz",
    }
)


def init_rate_limits(app) -> None:
    """After ``limiter.init_app(app)``: Flask-Limiter's hooks skip the
    UNLIMITED_ENDPOINTS, and failure limits give back what succeeded.

    Its before_request hook goes altogether while no limit is declared
    outside a view: that hook checks application, default, meta and
    blueprint limits only (a decorated view checks its own limits when it
    is called), and found nothing to check for 50 µs of every token
    request (bench/inproc.py).
    """
    hooks = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    for table in hooks:
        table[None] = [
            _unless_unlimited(hook) if _is_limiters(hook) else hook
            for hook in table.get(None, [])
            if not (table is app.before_request_funcs and _is_limiters(hook))
            or _limits_outside_views()
        ]
    app.after_request(give_back_unfailed_attempts)


def _limits_outside_views() -> bool:
    """Whether any limit applies to requests other than by a view's
    decorator. Flask-Limiter 4 has no public accessor for its meta and
    blueprint limits; an attribute not found counts as a limit."""
    manager = limiter.limit_manager
    return bool(
        manager.application_limits
        or manager.default_limits
        or getattr(limiter, "_meta_limits", True)
        or getattr(manager, "_blueprint_limits", True)
    )


def _only_limit(qualified_name: str) -> bool:
    """Whether the one limit Flask-Limiter holds for the view named
    ``qualified_name`` is the decorator asking, so that a request exempt
    from it leaves Flask-Limiter nothing to check. Its decorated limits
    have no public accessor either; not found counts as more limits."""
    decorated = getattr(limiter.limit_manager, "_decorated_limits", None)
    if decorated is None or _limits_outside_views():
        return False
    return len(decorated.get(qualified_name, ())) == 1


def _is_limiters(hook) -> bool:
    owner = getattr(hook, "__self__", None)  # a bound method
    if isinstance(hook, partial):  # its after_request hook
        owner = hook.args[0] if hook.args else None
    return owner is limiter


def _unless_unlimited(hook):
    @wraps(hook)
    def hook_unless_unlimited(*args):
        if request.endpoint in UNLIMITED_ENDPOINTS:
            # An after_request hook hands the response on; the others'
            # return values are ignored (before_request: None goes on).
            return args[0] if args and isinstance(args[0], Response) else None
        return hook(*args)

    return hook_unless_unlimited
