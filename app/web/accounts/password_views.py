"""Forgotten password, reset from an emailed link, and password change."""

import time

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from app.accounts.credentials import WeakPassword, set_password
from app.accounts.links import claim_link, find_link, issue_link
from app.accounts.services import find_account
from app.extensions import db
from app.mail.notices import notify_password_reset_requested
from app.models import LinkPurpose
from app.unit_of_work import commit_early
from app.web.accounts.forms import (
    ChangePasswordForm,
    ForgotPasswordForm,
    SetPasswordForm,
)
from app.web.events import request_who
from app.web.reauth import password_confirmed, reauth_limit
from app.web.sessions import (
    forget_session_cookie,
    load_current_session,
    login_required,
    safe_next,
    start_session,
)
from app.web.throttling import reset_address_limit, reset_ip_limit

bp = Blueprint("passwords", __name__)

# The forgot-password answer takes at least this long whether or not the
# address has an account, so its timing tells nothing either.
FORGOT_MIN_SECONDS = 0.25


@bp.route("/password/forgot", methods=["GET", "POST"])
@reset_ip_limit
@reset_address_limit
def forgot():
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("accounts/forgot.html", form=form, sent=False), status
    started = time.monotonic()
    account = find_account(form.email.data)
    if account is not None and account.is_active:
        settings = current_app.config["LATCHKEY"]
        token = issue_link(
            account, LinkPurpose.RESET_PASSWORD, settings.reset_link_lifetime
        )
        notify_password_reset_requested(
            account,
            request_who(),
            link=f"{settings.issuer}/password/reset/{token}",
            minutes=settings.reset_link_lifetime // 60,
        )
        commit_early("inside the forgot-password answer's constant time")
    remaining = FORGOT_MIN_SECONDS - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    return render_template("accounts/forgot.html", form=form, sent=True)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset(token):
    found = find_link(token, LinkPurpose.RESET_PASSWORD)
    if found is None:
        return render_template(
            "errors/generic.html",
            title="This link no longer works",
            message="Reset links work once, for a short time, and only the newest "
            "one. Ask for a new link.",
        ), 410
    link, account = found
    form = SetPasswordForm()
    problems = []
    if form.validate_on_submit():
        if not claim_link(link):
            db.session.rollback()
            return redirect(url_for("passwords.reset", token=token))
        try:
            set_password(
                account,
                form.password.data,
                form.sign_out_everywhere.data,
                request_who(),
                how="reset",
            )
        except WeakPassword as exc:
            db.session.rollback()  # the link stays usable
            problems = exc.problems
        else:
            flash("Your new password is saved. Sign in with it.", "success")
            return redirect(url_for("accounts.login", reset="done"))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "accounts/reset.html", form=form, problems=problems, email=account.email
    ), status


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@reauth_limit
def change():
    current = load_current_session()
    account = current.account
    form = ChangePasswordForm()
    problems, status = [], 400
    if form.validate_on_submit():
        has_password = account.password_hash is not None
        if has_password and not password_confirmed(
            current, form.current_password.data, "change_password"
        ):
            problems, status = ["Your current password is not right."], 401
        elif not has_password:
            problems = [
                "Set your first password through “Forgot password” "
                "so that we know this email address is yours."
            ]
        else:
            try:
                set_password(
                    account,
                    form.password.data,
                    form.sign_out_everywhere.data,
                    request_who(),
                    how="change",
                )
            except WeakPassword as exc:
                problems = exc.problems
            else:
                if form.sign_out_everywhere.data:
                    # Everything else is signed out; this browser signs in anew.
                    forget_session_cookie()
                    start_session(account, current.device, amr=["pwd"])
                flash(_changed_message(form.sign_out_everywhere.data), "success")
                return redirect(_after_change())
    return render_template(
        "accounts/change_password.html",
        form=form,
        problems=problems,
        forced=account.must_reset_password,
        has_password=account.password_hash is not None,
        next=safe_next(request.args.get("next"), ""),
    ), (status if problems or request.method == "POST" else 200)


def _changed_message(signed_out: bool) -> str:
    if signed_out:
        return (
            "Your password is changed. Every other device and app is signed "
            "out; this browser stays signed in."
        )
    return "Your password is changed."


def _after_change() -> str:
    """Where the person was going before a forced reset (an app's
    /authorize), else the account page."""
    return safe_next(
        request.args.get("next"), url_for("accounts.home", password="changed")
    )
