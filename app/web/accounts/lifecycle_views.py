"""Deactivating or deleting one's own account: a confirmation page (with
re-authentication when the sign-in is old), then the cut-off. The rules
live in app.accounts.lifecycle."""

from flask import Blueprint, redirect, render_template, url_for

from app.accounts.lifecycle import (
    AccountDeleted,
    AccountNotActive,
    deactivate_account,
    delete_account,
)
from app.web.accounts.security_forms import DeactivateForm, DeleteForm
from app.web.events import request_who
from app.web.reauth import confirmed, needs_reauth, reauth_error, reauth_limit
from app.web.sessions import (
    forget_session_cookie,
    load_current_session,
    login_required,
)

bp = Blueprint("lifecycle", __name__)


@bp.route("/account/deactivate", methods=["GET", "POST"])
@login_required
@reauth_limit
def deactivate():
    current = load_current_session()
    form = DeactivateForm()
    error, status = None, 200
    if form.validate_on_submit():
        if not confirmed(current, form.password.data, "deactivate"):
            error, status = reauth_error(current), 401
        else:
            try:
                deactivate_account(
                    current.account,
                    by="self",
                    who=request_who(current.device.id),
                )
            except (AccountNotActive, AccountDeleted):
                return redirect(url_for("accounts.login"))
            # The generation bump already ended this session; drop its cookie.
            forget_session_cookie()
            return render_template("accounts/deactivated.html")
    elif form.is_submitted():
        error, status = "Please try again.", 400
    return render_template(
        "accounts/deactivate.html",
        form=form,
        current=current,
        needs_password=needs_reauth(current),
        error=error,
    ), status


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
@reauth_limit
def delete():
    """Delete one's own account for good (as `flask users delete` does):
    asks first, and for a fresh sign-in or the password."""
    current = load_current_session()
    form = DeleteForm()
    error, status = None, 200
    if form.validate_on_submit():
        if not confirmed(current, form.password.data, "delete"):
            error, status = reauth_error(current), 401
        else:
            try:
                delete_account(current.account)
            except AccountDeleted:
                return redirect(url_for("accounts.login"))
            forget_session_cookie()
            return render_template("accounts/deleted.html")
    elif form.is_submitted():
        error, status = "Please try again.", 400
    return render_template(
        "accounts/delete.html",
        form=form,
        current=current,
        needs_password=needs_reauth(current),
        error=error,
    ), status
