"""All Authlib wiring: the authorization server, its grants and extensions.

Authlib parses and validates the protocol; every rule about what is stored
and what is live is in our services (tokens.py, refresh.py, revocation).
"""

from datetime import timedelta

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.base import OAuth2Error, invalid_error_characters
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.grants.util import is_openid_scope
from sqlalchemy import bindparam, select, update

from app.clients.cache import ClientCache
from app.clients.services import SCOPES_SUPPORTED
from app.cutoff.liveness import is_live, with_context
from app.cutoff.services import revoke_grant
from app.events.services import EventTag, record_event
from app.extensions import db
from app.metrics import TOKENS_ISSUED
from app.models import (
    Account,
    AuthorizationCode,
    BrowserSession,
    Client,
    Device,
)
from app.models.base import claim_once, utcnow
from app.oauth.client_auth import only_presented
from app.oauth.device_flow import (
    LatchkeyDeviceAuthorizationEndpoint,
    PollingDeviceCodeGrant,
)
from app.oauth.refresh import RefreshRejected, RefreshRotation
from app.oauth.throttling import token_request_failed
from app.oauth.tokens import Subject, TokenIssuer, is_session_bound
from app.security.opaque_tokens import hash_token, new_token
from app.web.events import request_who

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
PASSWORD_RESET_REQUIRED = (
    "The account must choose a new password before tokens are issued; "
    "the person has to sign in and change it."
)


class LatchkeyAuthorizationServer(AuthorizationServer):
    """Authlib's Flask server with our client lookup and token issuing."""

    def __init__(
        self,
        app,
        issuer_service: TokenIssuer,
        rotation: RefreshRotation,
        code_lifetime: int,
    ):
        super().__init__()
        self.issuer_service = issuer_service
        self.rotation = rotation
        self.code_lifetime = code_lifetime
        self.clients = ClientCache()
        self.init_app(app, query_client=self._find_client, save_token=_save_token)
        self.scopes_supported = SCOPES_SUPPORTED
        self.register_grant(
            AuthorizationCodeGrant,
            [S256CodeChallenge(), LatchkeyOpenIDCode(issuer_service)],
        )
        self.register_grant(RotatingRefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(PollingDeviceCodeGrant)
        self.register_endpoint(
            LatchkeyDeviceAuthorizationEndpoint(self, issuer_service.issuer)
        )
        self.register_extension(_issuer_parameter(issuer_service.issuer)())

    def _find_client(self, client_id):
        """The Client named ``client_id``, or None: a transient object of
        its own, never added to the session, made from the row this
        process keeps while no client has changed (app/clients/cache.py),
        so a client changed or deleted in another process counts from the
        next request on."""
        # A NUL byte is no client id, and PostgreSQL refuses it in a query.
        if not client_id or len(client_id) > 64 or "\x00" in client_id:
            return None
        row = self.clients.row(client_id, _read_client)
        if row is None:
            return None
        # Lists copied: whatever a request does to its Client stays its own.
        return Client(
            **{k: list(v) if isinstance(v, list) else v for k, v in row.items()}
        )

    def authenticate_client(self, request, methods, endpoint="token"):
        """Authlib's client authentication, failing in one way only.

        RFC 6749 §5.2: an unknown client, a wrong secret and undecodable
        Basic credentials (RFC 7617 §2; a ValueError in Authlib's parser)
        all get 401 invalid_client with WWW-Authenticate, so the answer
        neither tells which client ids exist nor becomes a 500.

        RFC 6749 §2.3: only the one method the request carries is tried, so
        a wrong credential never falls through to another; two methods at
        once are 400 invalid_request (see client_auth.presented_method).
        """
        methods = only_presented(request, methods)
        try:
            return super().authenticate_client(request, methods, endpoint)
        except (InvalidClientError, ValueError) as exc:
            raise InvalidClientError(
                status_code=401, description="Client authentication failed."
            ) from exc

    def handle_error_response(self, request, error):
        """Authlib's answer to an OAuth error, told to the token endpoint's
        per-client rate limit first (app/oauth/throttling.py)."""
        token_request_failed(error.error)
        return super().handle_error_response(request, error)

    def validate_requested_scope(self, scope):
        """Authlib's check that every scope is one we serve, after the
        syntax: RFC 6749 §3.3, ``scope = scope-token *( SP scope-token )``
        with ``scope-token = 1*NQCHAR``. An empty value is an omitted one
        (§3.1); a value of spaces only names no scope and is invalid_scope,
        not a request for the default."""
        if scope and not scope.strip():
            raise InvalidScopeError("The scope names no scope.")
        super().validate_requested_scope(scope)

    def get_consent_grant(self, request=None, end_user=None):
        """Authlib's validation of an authorization request; an error for
        any character in any parameter, never a 500.

        Authlib builds some error descriptions from what was sent (an
        unregistered ``redirect_uri``, for one) and refuses, with a
        ValueError, to build one holding a character RFC 6749 §4.1.2.1
        forbids there (outside %x20-21 / %x23-5B / %x5D-7E). Such a request
        is invalid_request, told on our own page: the parameter that held
        the character is not known to be a registered redirect URI.
        """
        try:
            return super().get_consent_grant(request, end_user=end_user)
        except ValueError as exc:
            if not _refused_error_description(exc):
                raise
            raise InvalidRequestError(
                "A parameter holds characters that are not allowed."
            ) from exc

    def get_authorization_grant(self, request):
        """Authlib's grant for this response_type, or unsupported_response_type.

        Authlib puts an unknown response_type into its error description,
        whose characters RFC 6749 §4.1.2.1 limits to %x20-21 / %x23-5B /
        %x5D-7E, and refuses (a ValueError, so a 500) to build an error
        holding any other. A value with such a character names no response
        type, so it gets the same error, told without echoing it.
        """
        response_type = request.payload.response_type or ""
        if invalid_error_characters(response_type):
            raise UnsupportedResponseTypeError(
                "",
                "The response type is not supported.",
                redirect_uri=self._redirect_uri_for_error(request),
            )
        return super().get_authorization_grant(request)

    def _redirect_uri_for_error(self, request) -> str | None:
        # RFC 6749 §4.1.2.1: redirect an error only to a URI the client
        # registered; otherwise the person is told on our own page.
        client = self.query_client(request.payload.client_id)
        if client is None:
            return None
        requested = request.payload.redirect_uri
        if not requested:
            return client.get_default_redirect_uri()
        return requested if client.check_redirect_uri(requested) else None

    def generate_token(
        self,
        grant_type,
        client,
        user=None,
        scope=None,
        expires_in=None,
        include_refresh_token=True,
    ):
        if user is not None and user.account.must_reset_password:
            # An operator forced a password reset (flask security
            # force-password-reset): the person may sign in, but no grant
            # (code, refresh or device) yields tokens until they chose a new
            # password. Rolled back so a refresh token or code is not spent.
            db.session.rollback()
            raise InvalidGrantError(PASSWORD_RESET_REQUIRED)
        # Never more than the client is registered for (RFC 6749 §3.3: the
        # server may issue less than asked; the response's scope says so).
        scope = client.get_allowed_scope(scope) if scope else ""
        if user is not None and user.grant is None:
            self.issuer_service.create_grant(user, client, scope, include_refresh_token)
        return self.issuer_service.token_response(client, scope, user)


def _refused_error_description(exc: ValueError) -> bool:
    """Whether ``exc`` is Authlib's OAuth2Error refusing its description."""
    tb = exc.__traceback__
    if tb is None:  # never raised, so not refused by Authlib
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is OAuth2Error.__init__.__code__


# The statement of _read_client, built once (SQLAlchemy caches its SQL).
_CLIENT_BY_ID = select(Client.__table__).where(
    Client.__table__.c.client_id == bindparam("client_id")
)


def _read_client(client_id: str) -> dict | None:
    """The row of ``client_id`` as a dict of column values, or None.

    A Core statement, not Session.get: the ORM's identity-map load cost
    about twice the CPU of the statement itself (bench/inproc.py).
    """
    row = (
        db.session.connection().execute(_CLIENT_BY_ID, {"client_id": client_id}).first()
    )
    return None if row is None else dict(row._mapping)


def _save_token(token, request):
    """Every grant calls this once it answers with ``token``: the count of
    responses issued is kept here, not where tokens are made, since a
    refresh makes its tokens before it knows it won the rotation."""
    TOKENS_ISSUED.labels(request.payload.grant_type).inc()
    code = getattr(request, "authorization_code", None)
    if code is not None and request.user is not None and request.user.grant:
        db.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == code.code_hash)
            .values(grant_id=request.user.grant.id)
        )


def _issuer_parameter(issuer: str):
    class LatchkeyIssuerParameter(IssuerParameter):
        def get_issuer(self) -> str:
            return issuer

    return LatchkeyIssuerParameter


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only, required unless an operator exempted the client."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        client = grant.request.client
        exempt = client.pkce_exempt and not client.is_public
        if not data.get("code_challenge") and not exempt:
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256",
                redirect_uri=redirect_uri,
            )
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            # RFC 7636 §4.3 would default to "plain"; we accept S256 only.
            raise InvalidRequestError(
                "code_challenge_method must be S256", redirect_uri=redirect_uri
            )
        return super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


def _check_nonce(nonce: str | None, redirect_uri=None) -> None:
    # The nonce is stored with the code and looked up; PostgreSQL refuses a NUL.
    if nonce and any(ord(c) < 32 or ord(c) == 127 for c in nonce):
        raise InvalidRequestError(
            "nonce must not contain control characters", redirect_uri=redirect_uri
        )


class LatchkeyOpenIDCode(OpenIDCode):
    def exists_nonce(self, nonce, request):
        _check_nonce(nonce)  # runs before the lookup; Authlib adds redirect_uri
        # Nonce replay protection is the relying party's job (OIDC Core
        # §15.5.2); we only keep a nonce from being reused within one client's
        # pending codes.
        return (
            db.session.execute(
                select(AuthorizationCode.code_hash).where(
                    AuthorizationCode.client_id == request.payload.client_id,
                    AuthorizationCode.nonce == nonce,
                    AuthorizationCode.used_at.is_(None),
                )
            ).first()
            is not None
        )

    def __init__(self, issuer_service: TokenIssuer):
        super().__init__(require_nonce=False)
        self.issuer_service = issuer_service

    def encode_id_token(self, token, request):
        return self.issuer_service.id_token(
            request.client, request.user, token["scope"], token.get("access_token")
        )


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    # RFC 6749 §4.1.2: Authlib's code grant answers in the redirect URI's
    # query; no other response_mode (OAuth 2.0 Multiple Response Types §2.1).
    RESPONSE_MODES = ("query",)

    def generate_authorization_code(self):
        return new_token()

    def validate_authorization_redirect_uri(self, request, client):
        """The redirect URI to answer to: the one sent (checked against the
        registration), else the client's only registered one.

        OIDC Core §3.1.2.1: an OpenID request (scope has openid) MUST send
        redirect_uri; without it, the person is told (RFC 6749 §4.1.2.1:
        never redirect to a URI the request did not name).
        """
        if not request.payload.redirect_uri and is_openid_scope(request.payload.scope):
            raise InvalidRequestError(
                "redirect_uri is required in an OpenID request.",
                state=request.payload.state,
            )
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(
            request, client
        )

    def validate_token_request(self):
        super().validate_token_request()
        code = self.request.authorization_code
        sent = self.request.payload.redirect_uri
        # RFC 6749 §4.1.3: not needed when /authorize was not sent one (Authlib
        # checks equality when it was); if sent anyway, it must be the URI the
        # code was delivered to.
        default = self.request.client.get_default_redirect_uri()
        if code.redirect_uri is None and sent and sent != default:
            raise InvalidGrantError("Invalid 'redirect_uri' in request.")

    def validate_authorization_request(self):
        redirect_uri = super().validate_authorization_request()
        _check_nonce(self.request.payload.data.get("nonce"), redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code, request):
        subject: Subject = request.user
        data = request.payload.data
        now = utcnow()
        db.session.add(
            AuthorizationCode(
                code_hash=hash_token(code),
                client_id=request.client.client_id,
                account_id=subject.account.id,
                device_id=subject.device_id,
                session_sid=subject.session_sid,
                account_generation=subject.account.generation,
                # RFC 6749 §4.1.3: remember whether it was sent, not the
                # default it fell back to ("" counts as absent, §3.1).
                redirect_uri=request.payload.redirect_uri or None,
                scope=request.scope or "",
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=subject.auth_time,
                amr=subject.amr,
                acr=subject.acr,
                created_at=now,
                expires_at=now + timedelta(seconds=self.server.code_lifetime),
            )
        )

    def query_authorization_code(self, code, client):
        if not code or len(code) > 200:
            return None
        # The code comes with all its liveness check needs (account, device,
        # the session it was issued in) in the one statement that finds it.
        found = db.session.execute(
            with_context(AuthorizationCode).where(
                AuthorizationCode.code_hash == hash_token(code)
            )
        ).first()
        if found is None or found[0].client_id != client.client_id:
            return None
        row = found[0]
        if row.used_at is not None:
            self._revoke_replayed(row)
            return None
        if row.expires_at <= utcnow():
            return None
        self._context = tuple(found[1:])  # account, device, session
        return row

    def _revoke_replayed(self, row: AuthorizationCode):
        # RFC 6749 §4.1.2: a code used twice revokes what it issued.
        if row.grant_id and revoke_grant(row.grant_id, "authorization_code_reused"):
            record_event(
                EventTag.CODE_REPLAYED,
                row.account_id,
                request_who(),
                client_id=row.client_id,
                grant_id=row.grant_id,
            )

    def authenticate_user(self, authorization_code):
        account, device, session = self._context
        now = utcnow()
        # Judged on the rows as loaded, before the claim spends the code.
        live = is_live(authorization_code, account, device, now=now)
        session_sid = self._live_sid(authorization_code, account, device, session)
        # Claim the code atomically: of two concurrent redemptions one wins.
        claimed = claim_once(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == authorization_code.code_hash,
                AuthorizationCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
        )
        if not claimed:
            db.session.rollback()
            self._revoke_replayed(
                db.session.get(
                    AuthorizationCode,
                    authorization_code.code_hash,
                    populate_existing=True,
                )
            )
            return None
        if not live:
            return None
        if session_sid is False:
            return None
        return Subject(
            account=account,
            device_id=authorization_code.device_id,
            session_sid=session_sid,
            auth_time=authorization_code.auth_time,
            amr=list(authorization_code.amr or []),
            acr=authorization_code.acr,
            nonce=authorization_code.nonce,
        )

    def _live_sid(
        self,
        code: AuthorizationCode,
        account: Account,
        device: Device,
        session: BrowserSession | None,
    ):
        """The code's session id if that session (loaded with the code) is
        still signed in; None if it ended but the grant may outlive it
        (offline_access); False if the grant would be bound to a session
        that has already ended."""
        if not code.session_sid:
            return None
        if is_live(session, account, device):
            return code.session_sid
        scope = self.request.client.get_allowed_scope(code.scope)
        return False if is_session_bound(code.session_sid, scope) else None

    def delete_authorization_code(self, authorization_code):
        """Spent codes are kept (used_at set) so that a replay is recognised."""


class RotatingRefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def validate_token_request(self):
        client = self._validate_request_client()
        self.request.client = client
        if not self.request.form.get("refresh_token"):
            raise InvalidRequestError("Missing 'refresh_token' in request.")

    def create_token_response(self):
        try:
            token = self.server.rotation.rotate(
                self.request.form.get("refresh_token"),
                self.request.client,
                self._issue,
                request_who(),
            )
        except RefreshRejected as exc:
            # No rollback: a rejection writes nothing but a reuse's
            # revocation, which the error answer's commit must keep.
            raise InvalidGrantError("The refresh token is invalid.") from exc
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def _issue(self, subject: Subject) -> dict:
        """The token response for ``subject``, made before the rotation
        writes anything (RefreshRotation.rotate): a scope the grant lacks
        (RFC 6749 §6) is refused with nothing written."""
        grant = subject.grant
        if grant is None:  # rotate() always names the grant it rotated
            raise ValueError("a refreshed Subject needs its grant")
        granted = set((grant.scope or "").split())
        asked = self.request.form.get("scope")
        scope = grant.scope
        if asked:
            if not set(asked.split()) <= granted:
                raise InvalidScopeError()
            scope = asked
        self.request.user = subject
        return self.generate_token(
            user=subject, scope=scope, include_refresh_token=True
        )


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
