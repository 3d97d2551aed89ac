"""/demo/: a relying party living beside the trial server so that the first
run ends on a page that worked. It does what any relying party does, over
HTTP and in the open: a code flow with PKCE, state and nonce (RFC 7636,
OIDC Core §3.1.2.1), the code exchanged at the token endpoint as a public
client, the ID token verified against the published JWKS (OIDC Core
§3.1.3.7), then the claims and tokens shown."""

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import requests
from flask import Blueprint, current_app, redirect, render_template, request, session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

bp = Blueprint("demo", __name__, url_prefix="/demo")

DEMO_RP_CLIENT_ID = "demo-rp"
DEMO_SCOPE = "openid profile email offline_access"
PENDING = "demo_rp_pending"
TIMEOUT = 5


def _issuer() -> str:
    return current_app.config["LATCHKEY"].issuer


def redirect_uri_for(issuer: str) -> str:
    """The demo relying party's redirect URI: it lives beside the issuer."""
    return issuer.rstrip("/") + "/demo/callback"


@bp.route("/")
def home():
    return render_template("demo/home.html", client_id=DEMO_RP_CLIENT_ID)


@bp.route("/start")
def start():
    """A fresh authorization request each time (so the printed URL works
    as often as it is opened)."""
    verifier = secrets.token_urlsafe(48)
    pending = {
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "verifier": verifier,
        "redirect_uri": redirect_uri_for(_issuer()),
    }
    session[PENDING] = pending
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": DEMO_RP_CLIENT_ID,
            "redirect_uri": pending["redirect_uri"],
            "scope": DEMO_SCOPE,
            "state": pending["state"],
            "nonce": pending["nonce"],
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return redirect(f"{_issuer()}/authorize?{query}")


@bp.route("/callback")
def callback():
    pending = session.pop(PENDING, None)
    if pending is None or request.args.get("state") != pending["state"]:
        return _failed("This answer does not belong to a sign-in started here.")
    if request.args.get("error"):
        return _failed(f"Latchkey answered: {request.args['error'][:64]}.")
    # RFC 9207: the answer names the issuer it came from.
    if request.args.get("iss") != _issuer():
        return _failed("The answer came from an unexpected issuer.")
    tokens = _exchange(request.args.get("code", ""), pending)
    if tokens is None:
        return _failed("The code could not be exchanged (it lives 60 seconds).")
    try:
        claims = _verified_id_token(tokens.get("id_token", ""), pending["nonce"])
    except (JoseError, ValueError, requests.RequestException) as exc:
        current_app.logger.info("demo RP: ID token refused: %r", exc)
        return _failed("The ID token did not verify against the JWKS.")
    return render_template("demo/signed_in.html", claims=claims, tokens=tokens)


def _exchange(code: str, pending: dict) -> dict | None:
    """RFC 6749 §4.1.3 with PKCE, as a public client (no secret)."""
    try:
        response = requests.post(
            f"{_issuer()}/token",
            data={
                "grant_type": "authorization_code",
                "code": code[:512],
                "redirect_uri": pending["redirect_uri"],
                "client_id": DEMO_RP_CLIENT_ID,
                "code_verifier": pending["verifier"],
            },
            timeout=TIMEOUT,
        )
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def _verified_id_token(id_token: str, nonce: str) -> dict:
    """The ID token's claims after checking its signature against the
    issuer's JWKS and iss, aud, exp, iat and nonce (OIDC Core §3.1.3.7).
    Raises JoseError or ValueError."""
    jwks = requests.get(f"{_issuer()}/jwks.json", timeout=TIMEOUT).json()
    token = jwt.decode(
        id_token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256"]
    )
    jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": _issuer()},
        aud={"essential": True, "value": DEMO_RP_CLIENT_ID},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
    ).validate(token.claims)
    return dict(token.claims)


def _failed(message: str):
    return render_template("demo/failed.html", message=message), 400
