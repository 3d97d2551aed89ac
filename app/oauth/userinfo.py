"""OIDC UserInfo (Core §5.3): claims for the access token's scope."""

from flask import current_app, jsonify

from app.extensions import db
from app.models import Account
from app.oauth.tokens import user_claims


def _bearer_error(error: str, status: int, description: str = ""):
    # RFC 6750 §3: errors go in WWW-Authenticate.
    header = 'Bearer realm="latchkey"'
    if error:
        header += f', error="{error}"'
        if description:
            header += f', error_description="{description}"'
    response = jsonify({"error": error} if error else {})
    response.status_code = status
    response.headers["WWW-Authenticate"] = header
    return response


def userinfo_response(request):
    auth = request.headers.get("Authorization", "")
    token = None
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
    elif request.method == "POST" and request.form.get("access_token"):
        token = request.form["access_token"]  # RFC 6750 §2.2
    if not token:
        return _bearer_error("", 401)
    inspector = current_app.extensions["latchkey"].inspector
    claims = inspector.access_token_claims(token)
    if claims is None or "gid" not in claims:
        return _bearer_error("invalid_token", 401, "The access token is not valid")
    scope = claims.get("scope", "")
    if "openid" not in scope.split():
        return _bearer_error("insufficient_scope", 403, "openid scope required")
    account = db.session.get(Account, claims["sub"])
    response = jsonify(user_claims(account, scope))
    response.headers["Cache-Control"] = "no-store"
    return response
