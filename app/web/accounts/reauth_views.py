"""/account/confirm: proving it is still you before a sensitive change,
whatever way the account signs in: the password, a code from the
authenticator app, a recovery code, or a fresh sign-in at a linked upstream
provider (app.web.federation.views, prompt=login and max_age=0). Success makes
the session fresh (app.web.reauth.mark_reauthenticated) and goes back
to the page that asked."""

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from app.accounts.totp import use_recovery_code
from app.events.services import EventTag
from app.federation.services import identities_of
from app.web.accounts.forms import ReauthForm
from app.web.events import record_request_event
from app.web.reauth import (
    mark_reauthenticated,
    password_confirmed,
    reauth_limit,
    refuse,
)
from app.web.sessions import load_current_session, login_required, safe_next

bp = Blueprint("reauth", __name__)


@bp.route("/account/confirm", methods=["GET", "POST"])
@login_required
@reauth_limit
def confirm():
    current = load_current_session()
    form = ReauthForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"), url_for("accounts.home"))
    errors, status = {}, 200
    if form.validate_on_submit():
        amr = _check(current, form, errors)
        if amr:
            mark_reauthenticated(current, amr)
            record_request_event(
                EventTag.REAUTH_SUCCESS,
                current.account.id,
                device_id=current.device.id,
                method=amr[0],
            )
            flash("Thank you, that is confirmed. You can go on.", "success")
            return redirect(safe_next(form.next.data, url_for("accounts.home")))
        status = 401
    elif form.is_submitted():
        return redirect(url_for("reauth.confirm"))
    providers = current_app.extensions["latchkey"].federation.providers
    linked = [
        providers[i.provider]
        for i in identities_of(current.account)
        if i.provider in providers
    ]
    return render_template(
        "accounts/reauth.html",
        current=current,
        form=form,
        errors=errors,
        providers=linked,
        next=safe_next(form.next.data, url_for("accounts.home")),
    ), status


def _check(current, form, errors: dict) -> list[str] | None:
    """The amr values (RFC 8176) of the method that worked, or None with
    ``errors`` naming the field that was wrong."""
    account = current.account
    if form.password.data:
        if account.password_hash and password_confirmed(
            current, form.password.data, "reauth"
        ):
            return ["pwd"]
        errors["password"] = "That password is not right."
    elif form.code.data and account.has_totp:
        if current_app.extensions["latchkey"].totp.verify(account, form.code.data):
            return ["otp", "mfa"]
        errors["code"] = "That code is not right. Codes change every 30 seconds."
    elif form.recovery_code.data and account.has_totp:
        if use_recovery_code(account, form.recovery_code.data):
            record_request_event(
                EventTag.RECOVERY_CODE_USED,
                account.id,
                device_id=current.device.id,
            )
            return ["mfa"]
        errors["recovery_code"] = "That recovery code is not right, or was used."
    else:
        errors["form"] = "Choose one way to confirm it is you."
    if "code" in errors or "recovery_code" in errors:
        # password_confirmed refuses wrong passwords itself; codes are here.
        refuse(current, "reauth")
    elif "form" in errors or not account.password_hash:
        # Nothing to check was typed: a refusal, not a guess.
        refuse(current, "reauth", guessed=False)
    return None
