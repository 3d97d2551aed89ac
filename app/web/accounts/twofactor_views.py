"""Two-factor settings: set up TOTP, see and replace recovery codes, turn
2FA off. The rules live in app.accounts.twofactor."""

from contextlib import suppress

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    url_for,
)

from app.accounts.totp import remaining_recovery_codes
from app.accounts.twofactor import (
    TotpAlreadyEnabled,
    TotpNotEnabled,
    WrongCode,
    disable_totp,
    enable_totp,
    regenerate_recovery_codes,
    start_enrolment,
)
from app.events.services import Who
from app.web.accounts.security_forms import (
    DisableTotpForm,
    EnableTotpForm,
    RegenerateCodesForm,
)
from app.web.events import request_who
from app.web.reauth import (
    confirmed,
    factor_removal_confirmed,
    needs_reauth,
    reauth_error,
    reauth_limit,
)
from app.web.sessions import (
    load_current_session,
    login_required,
)

bp = Blueprint("twofactor", __name__, url_prefix="/account/2fa")

WRONG_PASSWORD = "That password is not right."
WRONG_CODE = (
    "That code is not right. Check the clock of your phone and enter the "
    "code the app shows now."
)


def _who(current) -> Who:
    return request_who(current.device.id)


def _no_store(body: str, status: int = 200):
    """Pages that show a secret or recovery codes are never cached."""
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _overview(current, form=None, messages=(), status=200):
    account = current.account
    return render_template(
        "accounts/twofactor.html",
        account=account,
        current=current,
        codes_left=remaining_recovery_codes(account) if account.has_totp else 0,
        regenerate_form=form or RegenerateCodesForm(),
        needs_password=needs_reauth(current),
        errors=list(messages),
    ), status


def _codes_page(codes: list[str], just_enabled: bool):
    return _no_store(
        render_template(
            "accounts/twofactor_codes.html", codes=codes, just_enabled=just_enabled
        )
    )


@bp.route("")
@login_required
def overview():
    return _overview(load_current_session())


@bp.route("/setup", methods=["GET", "POST"])
@login_required
@reauth_limit
def setup():
    current = load_current_session()
    totp = current_app.extensions["latchkey"].totp
    form = EnableTotpForm()
    try:
        enrolment = start_enrolment(totp, current.account)
    except TotpAlreadyEnabled:
        return redirect(url_for("twofactor.overview"))
    error, status = None, 200
    if form.validate_on_submit():
        if not confirmed(current, form.password.data, "enable_totp"):
            error, status = reauth_error(current), 401
        else:
            try:
                codes = enable_totp(
                    totp, current.account, form.code.data, _who(current)
                )
            except TotpAlreadyEnabled:
                return redirect(url_for("twofactor.overview"))
            except WrongCode:
                error, status = WRONG_CODE, 400
            else:
                return _codes_page(codes, just_enabled=True)
    elif form.is_submitted():
        error, status = "Enter the 6-digit code from the app.", 400
    return _no_store(
        render_template(
            "accounts/twofactor_setup.html",
            form=form,
            enrolment=enrolment,
            current=current,
            needs_password=needs_reauth(current),
            error=error,
            password_error=status == 401,
        ),
        status,
    )


@bp.route("/recovery-codes", methods=["POST"])
@login_required
@reauth_limit
def recovery_codes():
    current = load_current_session()
    form = RegenerateCodesForm()
    if not form.validate_on_submit():
        return _overview(current, form, ["Please try again."], 400)
    if not confirmed(current, form.password.data, "recovery_codes"):
        return _overview(current, form, [reauth_error(current)], 401)
    try:
        codes = regenerate_recovery_codes(current.account, _who(current))
    except TotpNotEnabled:
        return redirect(url_for("twofactor.overview"))
    return _codes_page(codes, just_enabled=False)


@bp.route("/disable", methods=["GET", "POST"])
@login_required
@reauth_limit
def disable():
    current = load_current_session()
    if not current.account.has_totp:
        return redirect(url_for("twofactor.overview"))
    form = DisableTotpForm()
    error, status = None, 200
    if form.validate_on_submit():
        method = factor_removal_confirmed(
            current, form.password.data, form.recovery_code.data
        )
        if method is None:
            error, status = "Enter your password or an unused recovery code.", 401
        else:
            # Another tab may have turned it off first: same outcome.
            with suppress(TotpNotEnabled):
                disable_totp(current.account, method, _who(current))
            flash("Two-factor authentication is off.", "success")
            return redirect(url_for("twofactor.overview"))
    elif form.is_submitted():
        error, status = "Please try again.", 400
    return render_template(
        "accounts/twofactor_disable.html", form=form, error=error
    ), status
