"""Connected devices page and /link, where a TV's user code is approved."""

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from app.devices.linking import UnknownUserCode, decide, find_pending
from app.devices.services import (
    connected_devices,
    find_live_device,
    rename_device,
    sign_out_everywhere,
    sign_out_one_device,
)
from app.events.services import EventTag
from app.web.common import form_expired
from app.web.devices.forms import (
    DeviceDecisionForm,
    RenameDeviceForm,
    SignOutDeviceForm,
    SignOutEverywhereForm,
    UserCodeForm,
)
from app.web.events import record_request_event, request_who
from app.web.ratelimits import failed_attempt, failure_limit
from app.web.reauth import (
    confirmed,
    needs_reauth,
    reauth_error,
    reauth_limit,
)
from app.web.sessions import (
    client_ip,
    end_current_session,
    forget_session_cookie,
    load_current_session,
    login_required,
)
from app.web.signin import gate_for_clients

bp = Blueprint("devices", __name__)

BAD_CODE = (
    "That code is not valid or has expired. Check the code shown on "
    "your device and try again."
)


def _account_and_ip() -> str:
    current = load_current_session()
    return f"link:{current.account.id if current else '-'}:{client_ip()}"


# Wrong codes count against the person and address (_bad_code); right ones
# are given back (app.web.ratelimits explains why this holds under parallel
# tries).
LINK_CODE = "link_code"
link_limit = failure_limit(LINK_CODE, _account_and_ip)


def _bad_code(form):
    """The /link page again, the code refused; a wrong guess at a user code."""
    failed_attempt(LINK_CODE)
    return render_template("devices/link.html", form=form, error=BAD_CODE), 400


@bp.route("/link", methods=["GET", "POST"])
@login_required
@link_limit
def link():
    form = UserCodeForm()
    if request.method == "GET":
        form.user_code.data = request.args.get("user_code", "")[:32]
        return render_template("devices/link.html", form=form, error=None)
    if not form.validate_on_submit():
        return _bad_code(form)
    try:
        device_code, client = find_pending(form.user_code.data)
    except UnknownUserCode:
        return _bad_code(form)
    decision = DeviceDecisionForm(formdata=None, user_code=form.user_code.data)
    return render_template(
        "devices/link_confirm.html",
        form=decision,
        client=client,
        device_code=device_code,
        scopes=device_code.scope.split(),
    )


@bp.route("/link/decide", methods=["POST"])
@login_required
@link_limit
def link_decide():
    form = DeviceDecisionForm()
    current = load_current_session()
    gate = gate_for_clients(current.account)
    if gate is not None:
        return gate
    if not form.validate_on_submit() or form.decision.data not in ("approve", "deny"):
        return _bad_code(UserCodeForm())
    approve = form.decision.data == "approve"
    try:
        device = decide(
            form.user_code.data,
            current.account,
            approve,
            current.session.auth_time,
            list(current.session.amr or []),
            current.session.acr,
            client_ip(),
        )
    except UnknownUserCode:
        return _bad_code(UserCodeForm())
    if device is not None:
        record_request_event(
            EventTag.DEVICE_LINKED,
            current.account.id,
            device_id=device.id,
            name=device.name,
        )
        record_request_event(
            EventTag.NEW_DEVICE,
            current.account.id,
            device_id=device.id,
            name=device.name,
        )
    return render_template("devices/link_done.html", approved=approve)


@bp.route("/account/devices")
@login_required
def devices():
    return _devices_page(load_current_session())


def _devices_page(current, rename_errors: dict | None = None, status: int = 200):
    return render_template(
        "devices/list.html",
        current=current,
        devices=connected_devices(current.account),
        rename_form=RenameDeviceForm(formdata=None),
        rename_errors=rename_errors or {},
    ), status


@bp.route("/account/devices/<device_id>/sign-out", methods=["GET", "POST"])
@login_required
def sign_out_device(device_id):
    """GET asks first (what will stop working); POST signs the device out."""
    current = load_current_session()
    device = find_live_device(current.account, device_id[:32])
    if device is None:
        flash("That device is already signed out.", "info")
        return redirect(url_for("devices.devices"))
    form = SignOutDeviceForm()
    if request.method == "GET":
        view = next(
            (v for v in connected_devices(current.account) if v.device.id == device.id),
            None,
        )
        return render_template(
            "devices/confirm_sign_out.html",
            current=current,
            device=device,
            apps=view.apps if view else [],
            form=form,
        )
    if not form.validate_on_submit():
        return form_expired()
    sign_out_one_device(current.account, device.id, request_who())
    if device.id == current.device.id:
        end_current_session()
        flash("You are signed out on this device.", "success")
        return redirect(url_for("accounts.login"))
    flash(
        f"{device.name or 'The device'} is signed out. Its apps can no longer "
        "use your account.",
        "success",
    )
    return redirect(url_for("devices.devices"))


@bp.route("/account/devices/<device_id>/rename", methods=["POST"])
@login_required
def rename(device_id):
    form = RenameDeviceForm()
    if not form.validate_on_submit():
        if form.errors.keys() == {"csrf_token"}:
            return form_expired()
        return _devices_page(
            load_current_session(),
            {device_id[:32]: "Give the device a name of up to 200 characters."},
            400,
        )
    device = rename_device(
        load_current_session().account, device_id[:32], form.name.data
    )
    if device is None:
        flash("That device is already signed out.", "info")
    else:
        flash(f"Renamed to “{device.name}”.", "success")
    return redirect(url_for("devices.devices"))


@bp.route("/account/devices/sign-out-all", methods=["GET", "POST"])
@login_required
@reauth_limit
def sign_out_all():
    """GET asks first; POST (after re-authentication when the sign-in is
    old) signs out of every device."""
    current = load_current_session()
    form = SignOutEverywhereForm()
    error, status = None, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            return form_expired()
        if confirmed(current, form.password.data, "sign_out_everywhere"):
            sign_out_everywhere(current.account, request_who(), reason="user_request")
            forget_session_cookie()  # the generation bump already ended the session
            flash(
                "You are signed out of all devices. Every app has lost access; "
                "sign in again where you need to.",
                "success",
            )
            return redirect(url_for("accounts.login", signed_out="all"))
        error, status = reauth_error(current), 401
    return render_template(
        "devices/confirm_sign_out_all.html",
        current=current,
        form=form,
        devices=connected_devices(current.account),
        needs_password=needs_reauth(current),
        error=error,
    ), status
