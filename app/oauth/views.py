"""OAuth/OIDC endpoints: authorize (+consent), token, userinfo, discovery, JWKS."""

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    InteractionRequiredError,
    LoginRequiredError,
)
from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from app.accounts.signin import gate_for_clients
from app.events.services import EventTag
from app.events.web import record_request_event
from app.extensions import csrf, db
from app.models.base import utcnow
from app.oauth.consent import consent_needed, remember_consent
from app.oauth.forms import ConsentForm
from app.oauth.metadata import advertised_as, not_advertised
from app.oauth.throttling import token_client_limit
from app.oauth.tokens import Subject
from app.oauth.userinfo import userinfo_response
from app.security.sessions import load_current_session
from app.web import form_expired

bp = Blueprint("oauth", __name__)


def _server():
    return current_app.extensions["latchkey"].server


def _error_redirect(error: OAuth2Error, state: str | None) -> Response:
    params = {"error": error.error}
    if error.description:
        params["error_description"] = error.description
    if state:
        params["state"] = state
    # RFC 9207 §2: the iss parameter is in error responses too.
    params["iss"] = current_app.config["LATCHKEY"].issuer
    sep = "&" if "?" in error.redirect_uri else "?"
    return redirect(error.redirect_uri + sep + urlencode(params), code=302)


def _error_page(error: OAuth2Error) -> tuple[str, int]:
    # RFC 6749 §4.1.2.1: with no trusted redirect URI, tell the person, not
    # the (possibly forged) client.
    return render_template(
        "oauth/error.html", error=error.error, description=error.description
    ), 400


def _oauth_error(error: OAuth2Error):
    if error.redirect_uri:
        return _error_redirect(error, request.values.get("state"))
    return _error_page(error)


def _subject(current) -> Subject:
    return Subject(
        account=current.account,
        device_id=current.device.id,
        session_sid=current.session.sid,
        auth_time=current.session.auth_time,
        amr=list(current.session.amr or []),
        acr=current.session.acr,
    )


# OIDC Core §3.1.2.1: the prompt values authorize() acts on (discovery's
# prompt_values_supported, Initiating User Registration via OIDC §4.2).
PROMPT_VALUES = ("none", "login", "consent")


def _needs_login(current, prompts: set[str], max_age: str | None) -> bool:
    if current is None or "login" in prompts:
        return True
    if max_age is not None:
        try:
            age_limit = int(max_age)
        except ValueError:
            return False
        return (utcnow() - current.auth_time).total_seconds() > age_limit
    return False


def _login_redirect():
    # Ask once: the request we come back to no longer says prompt=login or
    # max_age=0, since the sign-in just happened.
    args = request.args.to_dict(flat=True)
    prompts = set(args.get("prompt", "").split()) - {"login"}
    if prompts:
        args["prompt"] = " ".join(sorted(prompts))
    else:
        args.pop("prompt", None)
    if args.get("max_age") == "0":
        args.pop("max_age")
    target = url_for("oauth.authorize") + "?" + urlencode(args)
    query = {"next": target}
    if request.args.get("login_hint"):
        query["login_hint"] = request.args["login_hint"]
    return redirect(url_for("accounts.login") + "?" + urlencode(query))


@bp.route("/authorize", methods=["GET", "POST"])
@advertised_as("authorization_endpoint")
def authorize():
    current = load_current_session()
    end_user = _subject(current) if current else None
    try:
        grant = _server().get_consent_grant(end_user=end_user)
    except OAuth2Error as error:
        return _oauth_error(error)
    client = grant.client
    redirect_uri = grant.redirect_uri
    prompts = set(request.args.get("prompt", "").split())
    state = request.args.get("state")

    if request.method == "GET" and _needs_login(
        current, prompts, request.args.get("max_age")
    ):
        if "none" in prompts:
            return _error_redirect(LoginRequiredError(redirect_uri=redirect_uri), state)
        return _login_redirect()
    if current is None:
        return _login_redirect()
    gate = gate_for_clients(current.account)
    if gate is not None:
        if "none" in prompts:
            return _error_redirect(
                InteractionRequiredError(redirect_uri=redirect_uri), state
            )
        return gate

    scope = grant.request.scope or ""
    form = ConsentForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return form_expired()
        if not form.approve.data:
            return _server().create_authorization_response(grant_user=None, grant=grant)
        remember_consent(current.account.id, client.client_id, scope)
        record_request_event(
            EventTag.CONSENT_GRANTED,
            current.account.id,
            client_id=client.client_id,
            scope=scope,
            device_id=current.device.id,
        )
        db.session.commit()
        return _server().create_authorization_response(grant_user=end_user, grant=grant)

    if "consent" in prompts or consent_needed(current.account.id, client, scope):
        if "none" in prompts:
            return _error_redirect(
                ConsentRequiredError(redirect_uri=redirect_uri), state
            )
        return render_template(
            "oauth/consent.html",
            form=form,
            client=client,
            scopes=scope.split(),
            account=current.account,
        )
    return _server().create_authorization_response(grant_user=end_user, grant=grant)


@bp.route("/token", methods=["POST"])
@advertised_as("token_endpoint")  # auth methods: from the grants
@csrf.exempt
@token_client_limit
def token():
    return _server().create_token_response()


@bp.route("/userinfo", methods=["GET", "POST"])
@advertised_as("userinfo_endpoint")
@csrf.exempt
def userinfo():
    return userinfo_response(request)


def _json(body: str, max_age=300) -> Response:
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.route("/.well-known/openid-configuration")
@bp.route("/.well-known/oauth-authorization-server")
@not_advertised("the metadata document itself (RFC 8414 §3, OIDC Discovery §4)")
def discovery():
    return _json(current_app.extensions["latchkey"].discovery_json)


@bp.route("/jwks.json")
@advertised_as("jwks_uri")
def jwks():
    return _json(current_app.extensions["latchkey"].keys.jwks_json(), max_age=60)
