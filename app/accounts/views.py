"""Sign-in and sign-out pages."""

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from app.accounts.forms import LoginForm, LogoutForm
from app.accounts.services import check_password, find_account
from app.events.services import EventTag, record_event
from app.extensions import db
from app.federation.forms import UnlinkForm
from app.federation.services import identities_of
from app.security.sessions import (
    client_ip,
    device_for_sign_in,
    end_current_session,
    load_current_session,
    login_required,
    safe_next,
    start_session,
    user_agent,
)

bp = Blueprint("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
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
            record_event(
                EventTag.LOGIN_FAILURE,
                known.id if known else None,
                ip=client_ip(),
                user_agent=user_agent(),
            )
            db.session.commit()
            error = "Wrong email or password."
        else:
            device, is_new = device_for_sign_in(account)
            db.session.flush()
            start_session(account, device, amr=["pwd"], acr="0")
            if is_new:
                record_event(
                    EventTag.NEW_DEVICE,
                    account.id,
                    ip=client_ip(),
                    user_agent=user_agent(),
                    device_id=device.id,
                    name=device.name,
                )
            record_event(
                EventTag.LOGIN_SUCCESS,
                account.id,
                ip=client_ip(),
                user_agent=user_agent(),
                device_id=device.id,
                method="pwd",
            )
            db.session.commit()
            return redirect(safe_next(form.next.data, url_for("accounts.home")))
    elif request.method == "POST":
        error = "Please fill in both fields and try again."
    status = 401 if error == "Wrong email or password." else 200
    if request.method == "POST" and form.errors:
        status = 400
    providers = current_app.extensions["latchkey"].federation.providers
    return render_template(
        "accounts/login.html", form=form, error=error, providers=providers.values()
    ), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    form = LogoutForm()
    if request.method == "POST" and form.validate_on_submit():
        ended = end_current_session()
        if ended is not None:
            record_event(
                EventTag.LOGOUT,
                ended.account_id,
                ip=client_ip(),
                user_agent=user_agent(),
                device_id=ended.device_id,
            )
        db.session.commit()
        return redirect(url_for("accounts.login"))
    return render_template(
        "accounts/logout.html", form=form, current=load_current_session()
    )


@bp.route("/")
@bp.route("/account")
@login_required
def home():
    current = load_current_session()
    federation = current_app.extensions["latchkey"].federation
    return render_template(
        "accounts/home.html",
        current=current,
        logout_form=LogoutForm(),
        identities=identities_of(current.account),
        unlink_form=UnlinkForm(),
        providers=federation.providers,
    )
