"""Who is signed in: the server-side browser session, its device, and the
decorators that ask for a (fresh) sign-in.

The session cookie holds a random 256-bit id; only its SHA-256 is stored.
A session is live only while its account is active, its device is not
signed out and the account's generation has not moved past it
(app.cutoff.liveness, the rule every artifact is checked against).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from urllib.parse import urlencode, urlparse

from flask import current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select

from app.cutoff.liveness import is_live, with_context
from app.cutoff.services import end_session
from app.extensions import db
from app.models import Account, BrowserSession, Device, SessionEnd
from app.models.base import utcnow
from app.models.device import describe_user_agent
from app.security.opaque_tokens import hash_token, new_token

DEVICE_COOKIE_MAX_AGE = 400 * 86400  # the longest lifetime browsers keep


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session (CSRF tokens, flashed messages), which
    builds its signing serializer only when a request brings the cookie:
    Flask's builds one for every request, and machine clients (the token,
    introspection and JWKS endpoints) never bring one."""

    def open_session(self, app, request):
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


@dataclass
class CurrentSession:
    session: BrowserSession
    account: Account
    device: Device

    @property
    def auth_time(self) -> datetime:
        return self.session.auth_time


def client_ip() -> str:
    return request.remote_addr or ""


def user_agent() -> str:
    return request.headers.get("User-Agent", "")[:400]


def session_cookie_name() -> str:
    return f"{current_app.config['LATCHKEY'].cookie_prefix}_session"


def device_cookie_name() -> str:
    return f"{current_app.config['LATCHKEY'].cookie_prefix}_device"


def _queue_cookie(name, value, max_age):
    g.setdefault("cookies_to_set", []).append((name, value, max_age))


def apply_queued_cookies(response):
    """after_request hook: write the cookies the request decided on."""
    queued = g.get("cookies_to_set")
    if not queued:  # every machine request: no issuer to parse
        return response
    secure = _cookies_secure()
    for name, value, max_age in queued:
        if value is None:
            response.delete_cookie(name, httponly=True, samesite="Lax", secure=secure)
        else:
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                httponly=True,
                samesite="Lax",
                secure=secure,
                path="/",
            )
    return response


def _cookies_secure() -> bool:
    issuer = urlparse(current_app.config["LATCHKEY"].issuer)
    if issuer.scheme == "https":
        return True
    # Plain http is only ever accepted on loopback (see config checks).
    return issuer.hostname not in ("127.0.0.1", "localhost")


def load_current_session() -> CurrentSession | None:
    """The live session of this request's cookie, or None. Memoised per request."""
    if "current" in g:
        return g.current
    g.current = None
    cookie = request.cookies.get(session_cookie_name())
    if not cookie or len(cookie) > 100:
        return None
    row = db.session.execute(
        with_context(BrowserSession).where(BrowserSession.id_hash == hash_token(cookie))
    ).first()
    if row is None:
        return None
    sess, account, device = row
    if not is_live(sess, account, device):
        return None
    g.current = CurrentSession(sess, account, device)
    return g.current


def device_for_sign_in(account: Account) -> tuple[Device, bool]:
    """This browser's device for ``account``, made (and cookied) if new.

    Returns (device, is_new).
    """
    cookie = request.cookies.get(device_cookie_name())
    now = utcnow()
    if cookie and len(cookie) <= 100:
        device = db.session.execute(
            select(Device).where(
                Device.cookie_hash == hash_token(cookie),
                Device.account_id == account.id,
                Device.revoked_at.is_(None),
            )
        ).scalar_one_or_none()
        if device is not None:
            device.last_seen_at = now
            device.last_ip = client_ip()
            return device, False
    cookie = new_token()
    device = Device(
        cookie_hash=hash_token(cookie),
        account_id=account.id,
        kind="browser",
        name=describe_user_agent(user_agent()),
        first_seen_at=now,
        last_seen_at=now,
        last_ip=client_ip(),
    )
    db.session.add(device)
    _queue_cookie(device_cookie_name(), cookie, DEVICE_COOKIE_MAX_AGE)
    return device, True


def start_session(
    account: Account,
    device: Device,
    amr: list[str],
    acr="0",
    upstream: dict | None = None,
):
    """Create a session row, or renew this browser's, and queue its new
    cookie, with a new CSRF token.

    The same person signing in again on the same device (prompt=login,
    max_age) renews the session in place: a new cookie (no fixation), a new
    auth_time and lifetime, the same ``sid``, so the apps holding grants
    bound to it stay signed in. Anyone else's sign-in ends it first.
    ``upstream`` ({"provider", "sub", "sid"}) ties a federated sign-in to
    the provider's session for its back-channel logout.
    """
    rotate_csrf_token()
    cookie = new_token()
    now = utcnow()
    lifetime = current_app.config["LATCHKEY"].session_lifetime
    current = load_current_session()
    if current and (current.account.id, current.device.id) == (account.id, device.id):
        sess = current.session
        sess.id_hash = hash_token(cookie)
    else:
        end_current_session(SessionEnd.REPLACED)
        sess = BrowserSession(
            id_hash=hash_token(cookie),
            account_id=account.id,
            device_id=device.id,
            account_generation=account.generation,
            created_at=now,
        )
        db.session.add(sess)
    sess.auth_time = now
    sess.amr = amr
    sess.acr = acr
    sess.expires_at = now + timedelta(seconds=lifetime)
    upstream = upstream or {}
    sess.upstream_provider = upstream.get("provider")
    sess.upstream_subject = upstream.get("sub")
    sess.upstream_sid = upstream.get("sid")
    _queue_cookie(session_cookie_name(), cookie, lifetime)
    g.current = CurrentSession(sess, account, device)
    return sess


def rotate_csrf_token() -> None:
    """Retire this browser's CSRF token: a page rendered after this call
    carries a new one, and a form from before it is refused.

    Flask-WTF keeps the raw token in the Flask session (and, once made,
    in ``g`` for the rest of the request), both under the field name. A
    token seen while signed out (a shared computer, a page an attacker
    planted) must not be good for forms of the signed-in session it gets
    to, nor the reverse (OWASP session management: renew what the session
    ties to on every change of privilege).
    """
    name = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    session.pop(name, None)
    g.pop(name, None)


def forget_session_cookie() -> None:
    """Clear this browser's session cookie, e.g. after the session was cut
    off by other means (sign out everywhere)."""
    _queue_cookie(session_cookie_name(), None, 0)
    g.current = None


def end_current_session(
    cause: str = SessionEnd.LOGOUT, client_id: str | None = None
) -> BrowserSession | None:
    """End this browser's session, if any, clear its cookie and retire the
    CSRF token that went with it; the session-bound grants made in it end
    with it. ``cause`` is a SessionEnd value, ``client_id`` the client that
    asked for it (RP logout)."""
    current = load_current_session()
    rotate_csrf_token()
    if request.cookies.get(session_cookie_name()):
        _queue_cookie(session_cookie_name(), None, 0)
    g.current = None
    if current is None:
        return None
    end_session(current.session.sid, cause, client_id)
    return current.session


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site relative paths are followed after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if load_current_session() is None:
            query = urlencode({"next": request.full_path.rstrip("?")})
            return redirect(url_for("accounts.login") + "?" + query)
        return view(*args, **kwargs)

    return wrapper
