"""Self-service sign-up, email verification and email change."""

from flask import (
    Blueprint,
    abort,
    current_app,
    render_template,
    request,
)

from app.accounts.credentials import WeakPassword, new_password_hash
from app.accounts.links import claim_link, find_link, issue_link
from app.accounts.services import InvalidEmail, find_account, normalize_email
from app.events.services import EventTag
from app.extensions import db
from app.mail.notices import notify_email_change_requested, notify_email_changed
from app.mail.services import queue_email
from app.models import Account, LinkPurpose
from app.web.accounts.forms import ChangeEmailForm, SignupForm
from app.web.events import record_request_event, request_who
from app.web.forms import ConfirmForm
from app.web.reauth import needs_reauth, password_confirmed, reauth_limit, refuse
from app.web.sessions import (
    load_current_session,
    login_required,
)
from app.web.throttling import (
    email_change_mail_limit,
    mail_ip_limit,
    mail_sent,
    resend_mail_limit,
    signup_mail_limit,
)

bp = Blueprint("signup", __name__)
VERIFY_LINK_LIFETIME = 24 * 3600


def _settings():
    return current_app.config["LATCHKEY"]


def send_verification(account: Account) -> None:
    """Queue a verification link for the account's address."""
    token = issue_link(account, LinkPurpose.VERIFY_EMAIL, VERIFY_LINK_LIFETIME)
    queue_email(
        account.email,
        "verify_email",
        account=account,
        link=f"{_settings().issuer}/verify-email/{token}",
    )


@bp.route("/signup", methods=["GET", "POST"])
@mail_ip_limit
@signup_mail_limit
def signup():
    if not _settings().signup_enabled:
        abort(404)
    form = SignupForm()
    errors: dict[str, list[str]] = {}
    if form.validate_on_submit():
        try:
            email = normalize_email(form.email.data)
            password_hash = new_password_hash(
                current_app.extensions["latchkey"].passwords,
                email,
                form.name.data or "",
                form.password.data,
            )
        except InvalidEmail:
            errors["email"] = ["That is not an email address."]
        except WeakPassword as exc:
            errors["password"] = exc.problems
        if not errors:
            _register(email, form.name.data or "", password_hash)
            mail_sent()
            # The same page whether or not the address was taken: no
            # enumeration through sign-up.
            return render_template("accounts/signup_sent.html", email=email)
    elif form.is_submitted():
        # WTForms' own checks (a field missing or too long), each by its field.
        errors = {name: list(errs) for name, errs in form.errors.items()}
    status = 400 if request.method == "POST" else 200
    return render_template("accounts/signup.html", form=form, errors=errors), status


def _register(email: str, name: str, password_hash: str) -> None:
    # The password was hashed (and checked) whether or not the address is
    # taken: the same work, so the timing tells nothing either.
    existing = find_account(email)
    if existing is not None:
        queue_email(existing.email, "signup_existing", account=existing)
        return
    account = Account(
        email=email,
        name=name[:200],
        password_hash=password_hash,
        email_verified=False,
    )
    db.session.add(account)
    db.session.flush()
    record_request_event(EventTag.SIGNED_UP, account.id)
    send_verification(account)


@bp.route("/verify-email/<token>", methods=["GET", "POST"])
def verify_email(token):
    # GET only shows a button: mail scanners that fetch links must not
    # use them up.
    found = find_link(token, LinkPurpose.VERIFY_EMAIL)
    if found is None:
        return _dead_link()
    link, account = found
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        if claim_link(link):
            account.email_verified = True
            record_request_event(
                EventTag.EMAIL_VERIFIED,
                account.id,
                email=account.email,
            )
            return render_template("accounts/email_verified.html", email=account.email)
        return _dead_link()
    return render_template(
        "accounts/confirm_link.html",
        form=form,
        title="Confirm your email address",
        text=f"Confirm that {account.email} is your address.",
    )


@bp.route("/account/verify-email", methods=["POST"])
@login_required
@mail_ip_limit
@resend_mail_limit
def resend_verification():
    current = load_current_session()
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not current.account.email_verified:
        send_verification(current.account)
        mail_sent()
    return render_template("accounts/signup_sent.html", email=current.account.email)


@bp.route("/account/email", methods=["GET", "POST"])
@login_required
@reauth_limit
@mail_ip_limit
@email_change_mail_limit
def change_email():
    """Moving the account to another address needs the current password (or,
    for an account with no password, a fresh sign-in through its provider:
    /account/confirm), proves the new address by link, and tells the old
    one."""
    current = load_current_session()
    account = current.account
    form = ChangeEmailForm()
    errors, status = {}, 400
    if form.validate_on_submit():
        try:
            new_email = normalize_email(form.new_email.data)
        except InvalidEmail:
            new_email = None
        if not _still_you(current, form.current_password.data):
            errors["current_password"] = "Your current password is not right."
            status = 401
        elif new_email is None:
            errors["new_email"] = "That is not an email address."
        else:
            _request_email_change(current, new_email)
            mail_sent()
            return render_template("accounts/signup_sent.html", email=new_email)
    if not errors and request.method != "POST":
        status = 200
    return render_template(
        "accounts/change_email.html",
        form=form,
        errors=errors,
        current=current,
        has_password=account.password_hash is not None,
        needs_reauth=account.password_hash is None and needs_reauth(current),
    ), status


def _still_you(current, password: str | None) -> bool:
    """The current password for an account that has one (a wrong one is an
    event under the shared re-auth budget); a recent sign-in for an SSO-only
    account, which has no password to type (issue: every sensitive action
    works for SSO-only people)."""
    if current.account.password_hash is None:
        if needs_reauth(current):
            refuse(current, "change_email", guessed=False)
            return False
        return True
    return password_confirmed(current, password, "change_email")


def _request_email_change(current, new_email: str) -> None:
    """Mail the confirmation link to the new address and the notice to the
    old one, and record the request."""
    account = current.account
    token = issue_link(
        account, LinkPurpose.CHANGE_EMAIL, VERIFY_LINK_LIFETIME, new_email=new_email
    )
    queue_email(
        new_email,
        "email_change_confirm",
        account=account,
        new_email=new_email,
        link=f"{_settings().issuer}/account/email/confirm/{token}",
    )
    notify_email_change_requested(account, request_who(current.device.id), new_email)


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email_change(token):
    found = find_link(token, LinkPurpose.CHANGE_EMAIL)
    if found is None:
        return _dead_link()
    link, account = found
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        if find_account(link.new_email) is not None:
            return render_template(
                "errors/generic.html",
                title="Address already in use",
                message="Another account uses that address now.",
            ), 409
        if not claim_link(link):
            return _dead_link()
        old = account.email
        account.email = link.new_email
        account.email_verified = True
        notify_email_changed(account, request_who(), old)
        return render_template("accounts/email_verified.html", email=account.email)
    return render_template(
        "accounts/confirm_link.html",
        form=form,
        title="Confirm your new email address",
        text=f"Use {link.new_email} for your account from now on.",
    )


def _dead_link():
    return render_template(
        "errors/generic.html",
        title="This link no longer works",
        message="Links work once and for a limited time. Ask for a new one.",
    ), 410
