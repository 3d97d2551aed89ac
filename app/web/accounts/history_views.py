"""The account's security history page."""

from flask import Blueprint, current_app, render_template

from app.events.history import HISTORY_DAYS, security_history
from app.web.sessions import load_current_session, login_required

bp = Blueprint("history", __name__)


@bp.route("/account/security")
@login_required
def security():
    current = load_current_session()
    providers = current_app.extensions["latchkey"].federation.providers
    names = {slug: provider.name for slug, provider in providers.items()}
    return render_template(
        "accounts/security.html",
        current=current,
        entries=security_history(current.account.id, provider_names=names),
        days=HISTORY_DAYS,
    )
