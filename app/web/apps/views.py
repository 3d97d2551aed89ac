"""/account/apps: the apps a person has authorized, and Remove access."""

from flask import Blueprint, flash, redirect, render_template, request, url_for

from app.apps.services import apps_with_access, find_app, remove_access
from app.web.apps.forms import RemoveAccessForm
from app.web.common import form_expired
from app.web.events import request_who
from app.web.sessions import (
    load_current_session,
    login_required,
)

bp = Blueprint("apps", __name__)


@bp.route("/account/apps")
@login_required
def apps():
    current = load_current_session()
    return render_template(
        "apps/list.html", current=current, apps=apps_with_access(current.account)
    )


@bp.route("/account/apps/<client_id>/remove", methods=["GET", "POST"])
@login_required
def confirm_remove(client_id):
    """GET asks first, saying what stops working; POST removes access."""
    current = load_current_session()
    app = find_app(current.account, client_id[:64])
    if app is None:
        flash("That app has no access to your account.", "info")
        return redirect(url_for("apps.apps"))
    form = RemoveAccessForm()
    if request.method == "GET":
        return render_template("apps/confirm_remove.html", app=app, form=form)
    if not form.validate_on_submit():
        return form_expired()
    remove_access(current.account, app.client, request_who(current.device.id))
    flash(
        f"{app.client.name} can no longer use your account. It will have to "
        "ask you again.",
        "success",
    )
    return redirect(url_for("apps.apps"))
