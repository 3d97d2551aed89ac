"""Machine endpoints beside /token: revocation (RFC 7009), introspection
(RFC 7662) and device authorization (RFC 8628). CSRF-exempt: clients
authenticate themselves."""

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, current_app, jsonify, request

from app.extensions import csrf, without_transaction
from app.oauth.introspection import describe_token
from app.oauth.revocation import revoke_token
from app.web.events import request_who
from app.web.metadata import advertised_as

bp = Blueprint("oauth_api", __name__)
# RFC 7662 §2.1: only a client that can prove who it is may introspect.
INTROSPECTION_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# RFC 7009 §2.1: a public client revokes its own tokens by client_id alone.
REVOCATION_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


def _services():
    return current_app.extensions["latchkey"]


def _no_store(response, status=200):
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _authenticated_request(methods, endpoint):
    """(client, token) or raises OAuth2Error (401 invalid_client, 400 ...)."""
    server = _services().server
    oauth_request = server.create_oauth2_request(request)
    client = server.authenticate_client(oauth_request, methods, endpoint)
    token = request.form.get("token")
    if not token:
        raise _MissingToken
    return client, token


class _MissingToken(Exception):
    pass


def _run(handler, methods, endpoint):
    try:
        client, token = _authenticated_request(methods, endpoint)
    except OAuth2Error as error:
        return _services().server.handle_error_response(None, error)
    except _MissingToken:
        return _no_store(
            jsonify(error="invalid_request", error_description="Missing 'token'."), 400
        )
    return handler(client, token)


@bp.route("/introspect", methods=["POST"])
@advertised_as("introspection_endpoint", INTROSPECTION_AUTH_METHODS)
@csrf.exempt
def introspect():
    # Read-only: the revocation truth is read from the database on every
    # call, each check in one statement, so no transaction is needed.
    without_transaction()

    def answer(caller, token):
        services = _services()
        body = describe_token(
            services.inspector,
            token,
            request.form.get("token_type_hint"),
            caller,
            services.settings,
        )
        return _no_store(jsonify(body))

    return _run(answer, list(INTROSPECTION_AUTH_METHODS), "introspection")


@bp.route("/revoke", methods=["POST"])
@advertised_as("revocation_endpoint", REVOCATION_AUTH_METHODS)
@csrf.exempt
def revoke():
    def answer(caller, token):
        revoke_token(
            _services().inspector,
            token,
            request.form.get("token_type_hint"),
            caller,
            request_who(),
        )
        return _no_store(current_app.response_class(status=200))

    return _run(answer, list(REVOCATION_AUTH_METHODS), "revocation")


@bp.route("/device_authorization", methods=["POST"])
# RFC 8628 §4; client authentication as at /token (§3.1), so it has no
# auth-methods field of its own.
@advertised_as("device_authorization_endpoint")
@csrf.exempt
def device_authorization():
    return _services().server.create_endpoint_response("device_authorization")
