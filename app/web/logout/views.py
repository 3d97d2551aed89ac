"""OIDC RP-Initiated Logout 1.0: the end-session endpoint, and the question
it asks when the request does not prove it comes from this session's RP."""

from urllib.parse import urlencode

from flask import (
    Blueprint,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from app.events.services import EventTag
from app.extensions import csrf
from app.logout.services import (
    InvalidLogoutRequest,
    LogoutRequest,
    check_logout_request,
)
from app.models import SessionEnd
from app.web.events import record_request_event
from app.web.logout.forms import EndSessionForm
from app.web.metadata import advertised_as
from app.web.sessions import (
    end_current_session,
    load_current_session,
    session_cookie_name,
)

bp = Blueprint("logout", __name__)

# RP-Initiated Logout §2: the request parameters.
LOGOUT_PARAMS = (
    "id_token_hint",
    "logout_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
)


def _check(params) -> LogoutRequest:
    services = current_app.extensions["latchkey"]
    return check_logout_request(params, services.keys, services.settings.issuer)


def _no_store(response, status: int | None = None):
    response = make_response(response)
    if status is not None:
        response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(exc: InvalidLogoutRequest):
    # RP-Initiated Logout §4: what failed validation is not used, so the
    # person is told here and sent nowhere.
    page = render_template(
        "logout/error.html", error=exc.error, description=exc.description
    )
    return _no_store(page, 400)


@bp.route("/logout/end", methods=["GET", "POST"])
@advertised_as("end_session_endpoint")  # RP-Initiated Logout 1.0 §2.1
@csrf.exempt  # the RP's own page may POST here (§2); see the docstring
def end_session_endpoint():
    """RP-Initiated Logout §2. A relying party cannot hold our CSRF token, so
    the request itself only ends a session when its id_token_hint was issued
    for this browser's session; otherwise the person is asked through a
    CSRF-protected form."""
    # §2: GET carries the parameters in the query, POST in the form.
    params = request.form if request.method == "POST" else request.args
    try:
        logout = _check(params)
    except InvalidLogoutRequest as exc:
        return _error(exc)
    if request.method == "POST" and session_cookie_name() not in request.cookies:
        # A cross-site POST does not carry our SameSite=Lax session cookie, so
        # who is signed in cannot be seen; a top-level GET does carry it.
        query = urlencode({k: params[k] for k in LOGOUT_PARAMS if params.get(k)})
        target = url_for(".end_session_endpoint") + "?" + query
        return _no_store(redirect(target, 303))
    current = load_current_session()
    if current is None:
        return _finish(logout)  # nobody is signed in here: nothing to end
    if logout.hint_matches(current.session.sid, current.account.id):
        _end(logout)
        return _finish(logout)
    # §2: the OP MUST ask when there is no id_token_hint or it is not for the
    # current session: an unasked sign-out is a denial of service (Security
    # Considerations).
    form = EndSessionForm(
        formdata=None,
        client_id=logout.client.client_id if logout.client else "",
        post_logout_redirect_uri=logout.post_logout_redirect_uri or "",
        state=logout.state or "",
    )
    page = render_template(
        "logout/confirm.html", form=form, client=logout.client, current=current
    )
    return _no_store(page)


@bp.route("/logout/end/confirm", methods=["POST"])
def confirm_end_session():
    form = EndSessionForm()
    if not form.validate_on_submit():
        page = render_template(
            "errors/generic.html",
            title="Form expired",
            message="Please go back to the application and sign out again.",
        )
        return _no_store(page, 400)
    try:
        logout = _check(
            {
                "client_id": form.client_id.data,
                "post_logout_redirect_uri": form.post_logout_redirect_uri.data,
                "state": form.state.data,
            }
        )
    except InvalidLogoutRequest as exc:
        return _error(exc)
    if not form.confirm.data:
        target = logout.redirect_target() or url_for("accounts.home")
        return _no_store(redirect(target))
    _end(logout)
    return _finish(logout)


def _end(logout: LogoutRequest) -> None:
    """End this browser's session (which queues the back-channel notices)."""
    client = logout.client
    ended = end_current_session(
        SessionEnd.RP_LOGOUT, client.client_id if client else None
    )
    if ended is not None:
        record_request_event(
            EventTag.LOGOUT,
            ended.account_id,
            device_id=ended.device_id,
            client_id=client.client_id if client else None,
            client_name=client.name if client else None,
            via="end_session_endpoint",
        )


def _finish(logout: LogoutRequest):
    target = logout.redirect_target()
    if target:
        return _no_store(redirect(target))
    page = render_template("logout/signed_out.html", client=logout.client)
    return _no_store(page)
