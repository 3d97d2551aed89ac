"""Sign-in and sign-out pages."""

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.accounts.services import check_password, find_account
from app.accounts.totp import use_recovery_code
from app.events.services import EventTag
from app.extensions import db
from app.federation.services import identities_of
from app.models import Account
from app.web.accounts.forms import LoginForm, LogoutForm, ProfileForm, SecondFactorForm
from app.web.events import record_request_event
from app.web.federation.forms import UnlinkForm
from app.web.sessions import (
    end_current_session,
    load_current_session,
    login_required,
)
from app.web.signin import (
    PENDING_SECOND_FACTOR,
    complete_sign_in,
    finish_first_factor,
    pending_second_factor,
)
from app.web.throttling import (
    login_account_limit,
    login_ip_limit,
    second_factor_limit,
    wrong_password,
    wrong_second_factor,
)

bp = Blueprint("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
@login_ip_limit
@login_account_limit
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        form.email.data = request.args.get("login_hint", "")[:320]
    error = None
    if form.validate_on_submit():
        passwords = current_app.extensions["latchkey"].passwords
        account = check_password(passwords, form.email.data, form.password.data)
        if account is None:
            known = find_account(form.email.data)
            record_request_event(
                EventTag.LOGIN_FAILURE,
                known.id if known else None,
            )
            wrong_password()
            error = "Wrong email or password."
        else:
            return finish_first_factor(account, ["pwd"], form.next.data)
    elif request.method == "POST":
        error = "Please fill in both fields and try again."
    status = 401 if error == "Wrong email or password." else 200
    if request.method == "POST" and form.errors:
        status = 400
    providers = current_app.extensions["latchkey"].federation.providers
    return render_template(
        "accounts/login.html", form=form, error=error, providers=providers.values()
    ), status


MAX_SECOND_FACTOR_FAILURES = 5


@bp.route("/login/2fa", methods=["GET", "POST"])
@second_factor_limit
def second_factor():
    """The second step of sign-in: a TOTP code or a recovery code."""
    pending = pending_second_factor()
    if pending is None:
        return redirect(url_for("accounts.login"))
    account = db.session.get(Account, pending["account_id"])
    if account is None or not account.is_active:
        # Deactivated or deleted since the password step: no sign-in.
        session.pop(PENDING_SECOND_FACTOR, None)
        return redirect(url_for("accounts.login"))
    form = SecondFactorForm()
    error = None
    if form.validate_on_submit():
        services = current_app.extensions["latchkey"]
        if form.recovery_code.data:
            ok = use_recovery_code(account, form.recovery_code.data)
            amr = [*pending["amr"], "mfa"]
            tag = EventTag.RECOVERY_CODE_USED
        else:
            ok = services.totp.verify(account, form.code.data or "")
            amr = [*pending["amr"], "otp", "mfa"]
            tag = None
        if ok:
            if tag:
                record_request_event(tag, account.id)
            return complete_sign_in(
                account,
                amr,
                pending["next"],
                pending["provider"],
                pending.get("upstream"),
            )
        pending["failures"] += 1
        record_request_event(
            EventTag.SECOND_FACTOR_FAILURE,
            account.id,
        )
        wrong_second_factor()
        if pending["failures"] >= MAX_SECOND_FACTOR_FAILURES:
            session.pop(PENDING_SECOND_FACTOR, None)
            return redirect(url_for("accounts.login"))
        session[PENDING_SECOND_FACTOR] = pending
        error = "That code is not right. Codes work once and change every 30 seconds."
    status = 401 if error else (400 if request.method == "POST" else 200)
    return render_template(
        "accounts/second_factor.html", form=form, error=error
    ), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    form = LogoutForm()
    if request.method == "POST" and form.validate_on_submit():
        ended = end_current_session()
        if ended is not None:
            record_request_event(
                EventTag.LOGOUT,
                ended.account_id,
                device_id=ended.device_id,
            )
        flash("You are signed out.", "success")
        return redirect(url_for("accounts.login"))
    return render_template(
        "accounts/logout.html", form=form, current=load_current_session()
    )


@bp.route("/")
@bp.route("/account")
@login_required
def home():
    current = load_current_session()
    return _home_page(current, ProfileForm(formdata=None, name=current.account.name))


def _home_page(current, profile_form, status=200):
    federation = current_app.extensions["latchkey"].federation
    return render_template(
        "accounts/home.html",
        current=current,
        logout_form=LogoutForm(),
        identities=identities_of(current.account),
        unlink_form=UnlinkForm(),
        providers=federation.providers,
        profile_form=profile_form,
    ), status


@bp.route("/account/profile", methods=["POST"])
@login_required
def profile():
    """Change the display name (the ``name`` claim apps see)."""
    current = load_current_session()
    form = ProfileForm()
    if not form.validate_on_submit():
        return _home_page(current, form, 400)
    name = " ".join((form.name.data or "").split())
    if name != current.account.name:
        current.account.name = name
        record_request_event(
            EventTag.PROFILE_UPDATED, current.account.id, device_id=current.device.id
        )
    flash("Your name is saved." if name else "Your name is removed.", "success")
    return redirect(url_for("accounts.home"))
