"""Sign-in through upstream OpenID Connect providers, and linking."""

import requests
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from joserfc.errors import JoseError

from app.accounts.services import check_password, find_account
from app.events.services import EventTag
from app.extensions import csrf
from app.federation.errors import UpstreamError, UpstreamStateMismatch
from app.federation.services import (
    AccountDeactivated,
    EmailNotVouched,
    IdentityTaken,
    LastSignInMethod,
    NeedsLink,
    UpstreamIdentity,
    is_linked,
    link_identity,
    resolve_sign_in,
    unlink_identity,
    upstream_identity,
)
from app.federation.upstream_logout import (
    InvalidLogoutToken,
    end_upstream_sessions,
    validate_logout_token,
)
from app.models.base import utcnow
from app.security.opaque_tokens import hash_token
from app.web.common import form_expired
from app.web.events import record_request_event
from app.web.federation.forms import LinkExistingForm, UnlinkForm
from app.web.metadata import not_advertised
from app.web.ratelimits import failure_limit
from app.web.reauth import mark_reauthenticated
from app.web.sessions import (
    load_current_session,
    login_required,
    safe_next,
)
from app.web.signin import MFA_AMR, finish_first_factor
from app.web.throttling import LOGIN_ACCOUNT, wrong_password

bp = Blueprint("federation", __name__, url_prefix="/federation")
PENDING_LINK = "fed_pending_link"
AFTER = "fed_after"


def _clients():
    return current_app.extensions["latchkey"].federation


def _callback_url(slug: str) -> str:
    # Registered upstream exactly as this string, so built from the issuer.
    return f"{current_app.config['LATCHKEY'].issuer}/federation/{slug}/callback"


def _failure(title: str, message: str, status: int):
    return render_template(
        "federation/error.html", title=title, message=message
    ), status


class UpstreamUnavailable(Exception):
    """The provider's discovery document could not be had, or is unusable."""


METADATA_REQUIRED = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def _metadata(provider, client) -> dict:
    """The provider's discovery document, fetched once per process.

    An unusable answer is not kept (the next sign-in asks again); OIDC
    Discovery §4.3: its issuer must be the one configured. Raises
    UpstreamUnavailable.
    """
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError, TypeError) as exc:
        raise UpstreamUnavailable(repr(exc)) from exc
    if metadata.get("issuer") != provider.issuer or not all(
        isinstance(metadata.get(key), str) for key in METADATA_REQUIRED
    ):
        client.server_metadata.clear()
        raise UpstreamUnavailable("unusable discovery document")
    return metadata


@bp.route("/<slug>/start")
def start(slug):
    provider, client = _clients().get(slug)
    if provider is None:
        abort(404)
    current = load_current_session()
    linking = request.args.get("link") == "1" and current is not None
    reauth = request.args.get("reauth") == "1" and current is not None
    if reauth and not is_linked(current.account, slug):
        return _failure(
            "Not linked to this account",
            f"{provider.name} is not a way to sign in to this account.",
            400,
        )
    session[AFTER] = {
        "next": safe_next(request.args.get("next"), url_for("accounts.home")),
        "link_account": current.account.id if linking else None,
        "reauth_account": current.account.id if reauth else None,
        "reauth_since": int(utcnow().timestamp()) if reauth else None,
    }
    # OIDC Core §3.1.2.1: prompt=login and max_age=0 ask the provider to
    # authenticate the person again now, not to reuse its session.
    fresh = {"prompt": "login", "max_age": 0} if reauth else {}
    try:
        _metadata(provider, client)
        return client.authorize_redirect(_callback_url(slug), **fresh)
    except (
        UpstreamUnavailable,
        requests.RequestException,
        UpstreamError,
        ValueError,
        KeyError,
    ):
        return _failure(
            "Sign-in is unavailable",
            f"{provider.name} is not answering. Try again later, or "
            "sign in with your password.",
            502,
        )


@bp.route("/<slug>/callback")
def callback(slug):
    provider, client = _clients().get(slug)
    if provider is None:
        abort(404)
    after = session.pop(AFTER, None) or {}
    if request.args.get("error"):
        status = 403 if request.args["error"] == "access_denied" else 400
        return _failure(
            "Sign-in was not completed",
            f"{provider.name} did not sign you in ({request.args['error'][:64]}).",
            status,
        )
    try:
        metadata = _metadata(provider, client)
    except UpstreamUnavailable as exc:
        current_app.logger.info("upstream %s unreachable: %r", slug, exc)
        return _failure(
            "Sign-in is unavailable",
            f"{provider.name} is not answering. Try again later.",
            502,
        )
    # RFC 9207 §2.4 mix-up defence: the response must come from the issuer
    # we sent the person to, and must say so if its metadata promises `iss`.
    iss = request.args.get("iss")
    if iss != provider.issuer and (
        iss is not None
        or metadata.get("authorization_response_iss_parameter_supported") is True
    ):
        return _failure(
            "Sign-in was not completed",
            "The answer came from a different provider.",
            400,
        )
    try:
        token = client.authorize_access_token()
        claims = token.get("userinfo")
    except UpstreamStateMismatch:
        return _failure(
            "This sign-in link has expired", "Start again from the sign-in page.", 400
        )
    except (UpstreamError, JoseError, ValueError) as exc:
        current_app.logger.info("upstream %s answer rejected: %r", slug, exc)
        return _failure(
            "Sign-in was not completed",
            f"The answer from {provider.name} could not be verified.",
            400,
        )
    except (requests.RequestException, KeyError) as exc:
        current_app.logger.info("upstream %s unreachable: %r", slug, exc)
        return _failure(
            "Sign-in is unavailable",
            f"{provider.name} is not answering. Try again later.",
            502,
        )
    if not claims or not claims.get("sub") or claims.get("iss") != provider.issuer:
        return _failure(
            "Sign-in was not completed",
            f"{provider.name} did not send a valid ID token.",
            400,
        )
    identity = upstream_identity(provider, claims)
    if after.get("reauth_account"):
        return _reauthenticate(identity, provider, claims, after)
    if after.get("link_account"):
        return _link_to_current(identity, provider, after)
    return _sign_in(identity, provider, claims, after)


# Clocks of two servers differ a little; a sign-in this much older than the
# request that asked for it still counts as fresh.
AUTH_TIME_LEEWAY = 30


def _reauthenticate(identity: UpstreamIdentity, provider, claims, after):
    """The answer to a re-authentication request (start?reauth=1): the
    same upstream identity as the one linked to the signed-in account, and
    a sign-in made after the request (OIDC Core §3.1.2.1 max_age=0 makes
    auth_time required, §3.1.3.7 says to check it)."""
    current = load_current_session()
    if current is None or current.account.id != after["reauth_account"]:
        return _failure(
            "Please sign in again", "Your session ended while confirming.", 400
        )
    auth_time = claims.get("auth_time")
    fresh = isinstance(auth_time, int | float) and (
        auth_time >= after["reauth_since"] - AUTH_TIME_LEEWAY
    )
    if not is_linked(current.account, provider.slug, identity.subject) or not fresh:
        record_request_event(
            EventTag.REAUTH_FAILURE,
            current.account.id,
            device_id=current.device.id,
            provider=provider.slug,
            reason="other_identity" if fresh else "not_fresh",
        )
        return _failure(
            "That did not confirm it is you",
            f"{provider.name} did not sign in this account again just now. "
            "Try again, and sign in with the same account there.",
            403,
        )
    mark_reauthenticated(current, ["fed"])
    record_request_event(
        EventTag.REAUTH_SUCCESS,
        current.account.id,
        device_id=current.device.id,
        provider=provider.slug,
    )
    flash("Thank you, that is confirmed. You can go on.", "success")
    return redirect(safe_next(after.get("next"), url_for("accounts.home")))


def _link_to_current(identity: UpstreamIdentity, provider, after):
    current = load_current_session()
    if current is None or current.account.id != after["link_account"]:
        return _failure(
            "Please sign in again", "Your session ended while linking.", 400
        )
    refused = _link(current.account, identity, current.device.id)
    if refused:
        return refused
    flash(f"{provider.name} is linked: you can sign in with it.", "success")
    return redirect(url_for("accounts.home"))


def _link(account, identity: UpstreamIdentity, device_id: str | None = None):
    """Link and record it; a refusal page if the identity
    belongs to another account, else None."""
    try:
        link_identity(account, identity)
    except IdentityTaken:
        return _failure(
            "Already linked elsewhere",
            "That sign-in is linked to another Latchkey account.",
            409,
        )
    record_request_event(
        EventTag.PROVIDER_LINKED,
        account.id,
        device_id=device_id,
        provider=identity.provider,
    )
    return None


def _sign_in(identity: UpstreamIdentity, provider, claims, after):
    try:
        outcome = resolve_sign_in(identity, name=str(claims.get("name", "")))
    except AccountDeactivated as exc:
        record_request_event(
            EventTag.LOGIN_FAILURE,
            exc.account_id,
            method="fed",
            provider=provider.slug,
            reason="deactivated",
        )
        return _failure(
            "This account is deactivated", "It cannot be used to sign in.", 403
        )
    except EmailNotVouched:
        return _failure(
            "We could not create an account",
            f"{provider.name} did not confirm an email address for you.",
            403,
        )
    if isinstance(outcome, NeedsLink):
        session[PENDING_LINK] = {
            "provider": identity.provider,
            "subject": identity.subject,
            "email": identity.email,
            "next": after.get("next"),
            "upstream": _upstream_session(provider, claims),
        }
        return redirect(url_for("federation.link_existing"))
    # An upstream's word that it did MFA replaces ours only where an operator
    # said to trust it; otherwise any provider could switch our 2FA off.
    upstream_mfa = provider.trust_mfa and bool(MFA_AMR & set(claims.get("amr") or []))
    return _complete_sign_in(
        outcome.account,
        provider.slug,
        ["fed"],
        after.get("next"),
        upstream_mfa,
        _upstream_session(provider, claims),
    )


def _upstream_session(provider, claims) -> dict:
    return {
        "provider": provider.slug,
        "sub": str(claims["sub"]),
        "sid": str(claims["sid"])[:255] if claims.get("sid") else None,
    }


def _complete_sign_in(
    account,
    provider_slug: str,
    amr: list[str],
    next_url,
    upstream_mfa=False,
    upstream: dict | None = None,
):
    # 2FA is asked here too unless the upstream says it did MFA itself.
    return finish_first_factor(
        account,
        amr,
        next_url,
        provider=provider_slug,
        upstream_mfa=upstream_mfa,
        upstream=upstream,
    )


def _pending_email_key() -> str:
    # Like /login's per-account limit (typed_email_key): wrong passwords for
    # the email this link is for, whoever sends them.
    pending = session.get(PENDING_LINK) or {}
    return hash_token(str(pending.get("email") or ""))[:32]


@bp.route("/link-existing", methods=["GET", "POST"])
# The same limit (and budget) as /login's per-account limit.
@failure_limit(LOGIN_ACCOUNT, _pending_email_key)
def link_existing():
    """An account with the provider's email exists: its owner proves it with
    the password before the identity is linked (no silent linking)."""
    pending = session.get(PENDING_LINK)
    if not pending:
        return redirect(url_for("accounts.login"))
    provider, _ = _clients().get(pending["provider"])
    form = LinkExistingForm()
    error = None
    if form.validate_on_submit():
        passwords = current_app.extensions["latchkey"].passwords
        account = check_password(passwords, pending["email"], form.password.data)
        if account is None:
            error = "Wrong password."
            known = find_account(pending["email"])
            record_request_event(
                EventTag.LOGIN_FAILURE,
                known.id if known else None,
                method="pwd",
                provider=pending["provider"],
            )
            wrong_password()
        elif account.has_totp:
            # Link only once the second factor is passed as well.
            session[PENDING_LINK] = {**pending, "account_id": account.id}
            return finish_first_factor(
                account,
                ["pwd", "fed"],
                url_for("federation.finish_link"),
                provider=pending["provider"],
                upstream=pending.get("upstream"),
            )
        else:
            session.pop(PENDING_LINK, None)
            identity = UpstreamIdentity(
                pending["provider"], pending["subject"], pending["email"]
            )
            refused = _link(account, identity)
            if refused:
                return refused
            return _complete_sign_in(
                account,
                identity.provider,
                ["pwd", "fed"],
                pending.get("next"),
                upstream=pending.get("upstream"),
            )
    status = 401 if error else (400 if request.method == "POST" else 200)
    return render_template(
        "federation/link_existing.html",
        form=form,
        error=error,
        email=pending["email"],
        provider_name=provider.name if provider else "",
    ), status


@bp.route("/link-existing/finish")
@login_required
def finish_link():
    """After the second factor: link the identity whose account the password
    and second factor just proved, then go where the person was going."""
    pending = session.pop(PENDING_LINK, None) or {}
    current = load_current_session()
    if pending.get("account_id") != current.account.id or "mfa" not in (
        current.session.amr or []
    ):
        return redirect(url_for("accounts.home"))
    identity = UpstreamIdentity(
        pending["provider"], pending["subject"], pending["email"]
    )
    refused = _link(current.account, identity, current.device.id)
    if refused:
        return refused
    return redirect(safe_next(pending.get("next"), url_for("accounts.home")))


@bp.route("/<slug>/unlink", methods=["GET", "POST"])
@login_required
def unlink(slug):
    """GET asks first; POST removes the link."""
    current = load_current_session()
    if request.method == "GET":
        provider, _ = _clients().get(slug[:64])
        if not is_linked(current.account, slug[:64]):
            return redirect(url_for("accounts.home"))
        return render_template(
            "federation/confirm_unlink.html",
            form=UnlinkForm(),
            slug=slug[:64],
            name=provider.name if provider else "this sign-in provider",
            has_password=current.account.password_hash is not None,
        )
    if not UnlinkForm().validate_on_submit():
        return form_expired()
    try:
        removed = unlink_identity(current.account, slug[:64])
    except LastSignInMethod:
        return _failure(
            "You need a way to sign in",
            "This is the only way you can sign in. Set a password "
            "(through “Forgot password”) or link another provider "
            "first.",
            409,
        )
    if removed:
        record_request_event(
            EventTag.PROVIDER_UNLINKED,
            current.account.id,
            device_id=current.device.id,
            provider=slug[:64],
        )
    provider, _ = _clients().get(slug[:64])
    name = provider.name if provider else "The provider"
    flash(f"{name} is unlinked.", "success")
    return redirect(url_for("accounts.home"))


@bp.route("/<slug>/backchannel-logout", methods=["POST"])
@not_advertised(
    "Latchkey as the RP of an upstream provider: its backchannel_logout_uri "
    "is registered there (Back-Channel Logout §2.2), not advertised here"
)
@csrf.exempt  # the provider authenticates by signing the logout token
def backchannel_logout(slug):
    provider, client = _clients().get(slug)
    if provider is None:
        abort(404)
    try:
        claims = validate_logout_token(
            provider, client, request.form.get("logout_token", "")
        )
    except InvalidLogoutToken as exc:
        current_app.logger.info("logout token from %s refused: %s", slug, exc)
        return _no_store(
            jsonify(error="invalid_request", error_description="Bad logout token."),
            400,
        )
    except (requests.RequestException, UpstreamError, ValueError, KeyError):
        # Back-Channel Logout §2.8: the provider may retry later.
        return _no_store(jsonify(error="temporarily_unavailable"), 503)
    for account_id, sid in end_upstream_sessions(provider, claims):
        record_request_event(
            EventTag.UPSTREAM_LOGOUT,
            account_id,
            provider=slug,
            provider_name=provider.name,
            sid=sid,
        )
    return _no_store(current_app.response_class(status=200), 200)


def _no_store(response, status):
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
