"""Finishing a sign-in, whatever proved the first factor (password or an
upstream provider): ask for the second factor when the account has one,
then start the session, note a new device, and tell the owner."""

import time

from flask import redirect, render_template, request, session, url_for

from app.events.services import EventTag
from app.extensions import db
from app.mail.notices import notify_new_device
from app.models import Account
from app.web.events import record_request_event, request_who
from app.web.forms import ConfirmForm
from app.web.sessions import (
    device_for_sign_in,
    safe_next,
    start_session,
)

PENDING_SECOND_FACTOR = "pending_2fa"
SECOND_FACTOR_SECONDS = 300
ACR_SINGLE_FACTOR = "0"
ACR_MULTI_FACTOR = "mfa"
MFA_AMR = {"otp", "mfa", "hwk", "swk", "fpt", "face"}


def finish_first_factor(
    account: Account,
    amr: list[str],
    next_url: str | None,
    provider: str | None = None,
    upstream_mfa=False,
    upstream: dict | None = None,
):
    """Redirect to the second-factor step, or complete the sign-in.

    ``upstream`` is the provider session of a federated sign-in (see
    start_session)."""
    if account.has_totp and not upstream_mfa:
        session[PENDING_SECOND_FACTOR] = {
            "account_id": account.id,
            "amr": amr,
            "next": next_url or "",
            "provider": provider,
            "upstream": upstream,
            "started": int(time.time()),
            "failures": 0,
        }
        return redirect(url_for("accounts.second_factor"))
    if upstream_mfa:
        amr = [*amr, "mfa"]
    return complete_sign_in(account, amr, next_url, provider, upstream)


def pending_second_factor() -> dict | None:
    pending = session.get(PENDING_SECOND_FACTOR)
    if not pending or time.time() - pending["started"] > SECOND_FACTOR_SECONDS:
        session.pop(PENDING_SECOND_FACTOR, None)
        return None
    return pending


def complete_sign_in(
    account: Account,
    amr: list[str],
    next_url: str | None,
    provider: str | None = None,
    upstream: dict | None = None,
):
    """Start the session (new device noted and told), redirect."""
    session.pop(PENDING_SECOND_FACTOR, None)
    device, is_new = device_for_sign_in(account)
    db.session.flush()
    acr = ACR_MULTI_FACTOR if MFA_AMR & set(amr) else ACR_SINGLE_FACTOR
    start_session(account, device, amr=amr, acr=acr, upstream=upstream)
    details = {"method": "+".join(amr)}
    if provider:
        details["provider"] = provider
    if is_new:
        notify_new_device(account, device, request_who())
    record_request_event(
        EventTag.LOGIN_SUCCESS,
        account.id,
        device_id=device.id,
        **details,
    )
    if account.must_reset_password:
        # Keep where the person was going (an app's /authorize): after the
        # new password, they continue there instead of starting over.
        return redirect(url_for("passwords.change", forced=1, next=safe_next(next_url)))
    return redirect(safe_next(next_url, url_for("accounts.home")))


def gate_for_clients(account: Account):
    """A page to show instead of authorizing a client, or None.

    An unconfirmed address may not authorize clients yet; an account whose
    reset was forced must choose a new password first.
    """
    if account.must_reset_password:
        return redirect(
            url_for("passwords.change", forced=1, next=safe_next(request.full_path))
        )
    if not account.email_verified:
        return render_template(
            "accounts/verify_first.html", email=account.email, form=ConfirmForm()
        ), 403
    return None
