"""OAuth/OIDC endpoints: authorize (+consent), token, userinfo, discovery, JWKS."""

import hashlib
import json
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
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
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from app.config import JWKS_MAX_AGE
from app.events.services import EventTag
from app.extensions import csrf
from app.models.base import utcnow
from app.oauth.authorize_params import Freshness, check_authorization_params
from app.oauth.consent import consent_needed, remember_consent
from app.oauth.documents import DISCOVERY_MAX_AGE, document_headers
from app.oauth.forms import ConsentForm
from app.oauth.throttling import token_client_limit
from app.oauth.tokens import Subject
from app.oauth.userinfo import userinfo_response
from app.web.common import form_expired
from app.web.events import record_request_event
from app.web.metadata import advertised_as, not_advertised
from app.web.sessions import load_current_session
from app.web.signin import gate_for_clients

bp = Blueprint("oauth", __name__)
# Flask session keys: the request that was sent to sign in (and when), and
# the request whose consent page was shown.
LOGIN_ASKED = "authz_login_asked"
CONSENT_ASKED = "authz_consent_asked"
CONSENT_PAGES_KEPT = 5


FORM_SERIALIZATION = "application/x-www-form-urlencoded"


def _server():
    return current_app.extensions["latchkey"].server


def _error_redirect(error: OAuth2Error, state: str | None) -> BaseResponse:
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


def _authorization_params() -> dict[str, str]:
    """The authorization request's parameters, from the query (GET) or the
    form (POST): OIDC Core §3.1.2.1 requires both bindings."""
    return request.values.to_dict(flat=True)


def _digest(params: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def _signed_in_for_this_request(current, params) -> bool:
    """Whether ``current`` is the sign-in we asked for when this very
    request last sent the person to the login page; true once only."""
    asked = session.get(LOGIN_ASKED)
    if not asked or asked.get("request") != _digest(params):
        return False
    session.pop(LOGIN_ASKED)
    return current.session.auth_time.timestamp() >= asked["at"]


def _needs_login(current, freshness: Freshness, params) -> bool:
    if current is None:
        return True
    if not (freshness.forces_login or freshness.max_age is not None):
        return False
    # OIDC Core §3.1.2.1: prompt=login and max_age ask for a sign-in; the
    # one made for this request satisfies it, once, whatever max_age says
    # (max_age=0 could never be met otherwise).
    if _signed_in_for_this_request(current, params):
        return False
    if freshness.forces_login:
        return True
    age = (utcnow() - current.auth_time).total_seconds()
    return age > freshness.max_age


def _login_redirect(params: dict[str, str]):
    """Send the person to sign in, and back to this request as a GET."""
    session[LOGIN_ASKED] = {
        "request": _digest(params),
        "at": int(utcnow().timestamp()),
    }
    target = url_for("oauth.authorize") + "?" + urlencode(params)
    query = {"next": target}
    if params.get("login_hint"):
        query["login_hint"] = params["login_hint"]
    return redirect(url_for("accounts.login") + "?" + urlencode(query))


def _validated_request(end_user):
    """(grant, freshness) for this authorization request; raises
    OAuth2Error."""
    grant = _server().get_consent_grant(end_user=end_user)
    freshness = check_authorization_params(
        _authorization_params(), grant.redirect_uri, grant.RESPONSE_MODES
    )
    return grant, freshness


@bp.route("/authorize", methods=["GET", "POST"])
@advertised_as("authorization_endpoint")
@csrf.exempt  # a relying party's form POST (OIDC Core §3.1.2.1), not ours
def authorize():
    """The authorization request, by GET or form POST (OIDC Core §3.1.2.1).
    It changes nothing by itself; the person's answer goes to the
    CSRF-protected consent route."""
    if request.method == "POST" and request.mimetype != FORM_SERIALIZATION:
        # OIDC Core §3.1.2.1 and §13.2: a POSTed request is Form Serialized.
        # A multipart body could carry a parameter as a file part, which
        # would read as absent and let the request pass on defaults.
        return _error_page(InvalidRequestError("The request must be form-urlencoded."))
    params = _authorization_params()
    current = load_current_session()
    end_user = _subject(current) if current else None
    try:
        grant, freshness = _validated_request(end_user)
    except OAuth2Error as error:
        return _oauth_error(error)
    client, redirect_uri = grant.client, grant.redirect_uri
    state = params.get("state")
    if _needs_login(current, freshness, params):
        if "none" in freshness.prompts:
            return _error_redirect(LoginRequiredError(redirect_uri=redirect_uri), state)
        return _login_redirect(params)
    gate = gate_for_clients(current.account)
    if gate is not None:
        if "none" in freshness.prompts:
            return _error_redirect(
                InteractionRequiredError(redirect_uri=redirect_uri), state
            )
        return gate
    scope = grant.request.scope or ""
    if "consent" in freshness.prompts or consent_needed(
        current.account.id, client, scope
    ):
        if "none" in freshness.prompts:
            return _error_redirect(
                ConsentRequiredError(redirect_uri=redirect_uri), state
            )
        # The answer is accepted for this request only (see consent()); a
        # few are kept so that pages open in several tabs can all answer.
        asked = [d for d in session.get(CONSENT_ASKED, []) if d != _digest(params)]
        session[CONSENT_ASKED] = [*asked, _digest(params)][-CONSENT_PAGES_KEPT:]
        return render_template(
            "oauth/consent.html",
            form=ConsentForm(formdata=None),
            action=url_for("oauth.consent") + "?" + urlencode(params),
            client=client,
            scopes=scope.split(),
            account=current.account,
        )
    return _server().create_authorization_response(grant_user=end_user, grant=grant)


@bp.route("/authorize/consent", methods=["POST"])
@not_advertised("the person's answer on our consent page, not a client's endpoint")
def consent():
    """The person's Allow or Deny, for the request in the query string: the
    one whose consent page this browser was shown (CSRF-protected, and
    bound to that request so the page cannot answer another)."""
    params = request.args.to_dict(flat=True)
    form = ConsentForm()
    if not form.validate_on_submit():
        return form_expired()
    asked = session.get(CONSENT_ASKED, [])
    if _digest(params) not in asked:
        return form_expired()
    session[CONSENT_ASKED] = [d for d in asked if d != _digest(params)]
    current = load_current_session()
    if current is None:
        return _login_redirect(params)
    end_user = _subject(current)
    try:
        grant = _server().get_consent_grant(end_user=end_user)
    except OAuth2Error as error:
        return _oauth_error(error)
    gate = gate_for_clients(current.account)
    if gate is not None:
        return gate
    if not form.approve.data:
        return _server().create_authorization_response(grant_user=None, grant=grant)
    scope = grant.request.scope or ""
    remember_consent(current.account.id, grant.client.client_id, scope)
    record_request_event(
        EventTag.CONSENT_GRANTED,
        current.account.id,
        client_id=grant.client.client_id,
        scope=scope,
        device_id=current.device.id,
    )
    return _server().create_authorization_response(grant_user=end_user, grant=grant)


@bp.route("/token", methods=["POST"])
@advertised_as("token_endpoint")  # auth methods: from the grants
@csrf.exempt
@token_client_limit
def token():
    # No without_transaction() for client_credentials: its one statement
    # was the client lookup, which a kept client (app/clients/cache.py)
    # now answers without the session, whose connection that call would
    # check out. A lookup the cache misses runs in a transaction, ended by
    # the request's commit.
    return _server().create_token_response()


@bp.route("/userinfo", methods=["GET", "POST"])
@advertised_as("userinfo_endpoint")
@csrf.exempt
def userinfo():
    return userinfo_response(request)


def _json(body: str, max_age: int) -> Response:
    headers = document_headers(max_age)
    return Response(body, mimetype="application/json", headers=headers)


# GET and HEAD of these paths are answered below Flask, from the same text
# with the same headers (app/oauth/documents.py); these routes answer the
# rest (OPTIONS, a query string) and are what discovery derives from.
@bp.route("/.well-known/openid-configuration")
@bp.route("/.well-known/oauth-authorization-server")
@not_advertised("the metadata document itself (RFC 8414 §3, OIDC Discovery §4)")
def discovery():
    return _json(current_app.extensions["latchkey"].discovery_json, DISCOVERY_MAX_AGE)


@bp.route("/jwks.json")
@advertised_as("jwks_uri")
def jwks():
    # Rotation pre-publishes keys for longer than this (app/keys/ring.py).
    return _json(current_app.extensions["latchkey"].keys.jwks_json(), JWKS_MAX_AGE)
