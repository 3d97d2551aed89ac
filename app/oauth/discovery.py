"""OIDC Discovery 1.0 / RFC 8414 metadata, derived from what the process runs.

Nothing here is a list written beside the routes (STYLE.md: derive what you
advertise from what you run, as oidc-provider's discovery action does):
endpoint URLs come from the URL map (views marked with
app/web/metadata.py's ``advertised_as``), grant and response types, client
authentication methods and PKCE methods from the grants and endpoints
registered on the Authlib server, signing algorithms from the key ring,
claims from the token issuer. Built and validated once per process in
create_app; the views serve the same string on every request.
"""

import json
from collections.abc import Iterable
from typing import Any

from authlib.common.security import is_secure_transport
from authlib.oauth2 import rfc8414, rfc9207
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc import rpinitiated
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.discovery import OpenIDProviderMetadata
from flask import Flask

from app.models.key import DEFAULT_ALG, SUPPORTED_ALGS
from app.oauth.authorize_params import PROMPT_VALUES
from app.oauth.tokens import ID_TOKEN_CLAIMS, SCOPE_CLAIMS, SUBJECT_TYPES
from app.web.metadata import Advertised, mark_of


class MetadataError(RuntimeError):
    """What is mounted cannot be advertised (two routes for one field, a
    route with variables, an Authlib endpoint with no route) or the result
    fails Authlib's metadata validation. Raised at start-up."""


def build_discovery(app: Flask, services) -> str:
    """The discovery document as JSON text; raises MetadataError.

    Call once, after every blueprint is registered (the URL map is read).
    """
    metadata = build_metadata(app, services.server, services.settings.issuer)
    validate_metadata(metadata)
    return json.dumps(metadata)


def build_metadata(app: Flask, server, issuer: str) -> dict:
    """RFC 8414 §2 and OIDC Discovery §3 fields for ``server`` as mounted on
    ``app``. Raises MetadataError when the URL map cannot be advertised."""
    metadata: dict = {"issuer": issuer}
    metadata.update(endpoint_fields(app, issuer))
    _check_authlib_endpoints_mounted(server, metadata)
    metadata.update(grant_fields(server))
    if _has_extension(server, OpenIDCode):
        metadata.update(openid_fields(server))
    metadata.update(logout_fields())
    return metadata


# -- endpoints: from the URL map ------------------------------------------
def advertised_routes(app: Flask) -> dict:
    """{metadata field: (werkzeug Rule, Advertised)} for every marked view.

    Raises MetadataError for two routes claiming one field or a marked
    route with URL variables (a metadata value is one fixed URL).
    """
    found: dict = {}
    for rule in app.url_map.iter_rules():
        mark = mark_of(app.view_functions[rule.endpoint])
        if not isinstance(mark, Advertised):
            continue
        if rule.arguments:
            raise MetadataError(f"{rule.rule} has URL variables; cannot advertise")
        if mark.field in found and found[mark.field][0].rule != rule.rule:
            raise MetadataError(f"two routes claim {mark.field}")
        found[mark.field] = (rule, mark)
    return found


def endpoint_fields(app: Flask, issuer: str) -> dict:
    """Each advertised URL, plus ``<field>_auth_methods_supported`` where the
    view declares the client authentication it accepts (RFC 8414 §2)."""
    fields: dict = {}
    for field, (rule, mark) in sorted(advertised_routes(app).items()):
        fields[field] = issuer + rule.rule
        if mark.auth_methods:
            fields[mark.auth_methods_field] = list(mark.auth_methods)
    return fields


def _check_authlib_endpoints_mounted(server, metadata: dict) -> None:
    # An endpoint registered on Authlib (RFC 8628's device_authorization) is
    # reachable only through a route; its metadata field is <name>_endpoint.
    for name in server._endpoints:
        if f"{name}_endpoint" not in metadata:
            raise MetadataError(f"Authlib endpoint {name!r} has no advertised route")


# -- grants: from the Authlib server --------------------------------------
def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _authorization_grants(server) -> list:
    return [cls for cls, _extensions in server._authorization_grants]


def _token_grants(server) -> list:
    return [cls for cls, _extensions in server._token_grants]


def _grant_extensions(server) -> list:
    return [
        ext
        for _cls, extensions in server._authorization_grants + server._token_grants
        for ext in extensions or ()
    ]


def _has_extension(server, kind) -> bool:
    return any(isinstance(ext, kind) for ext in _grant_extensions(server))


def token_endpoint_auth_methods(server) -> list[str]:
    """Client authentication methods some grant at /token accepts (RFC 6749
    §2.3; Authlib checks each grant's TOKEN_ENDPOINT_AUTH_METHODS)."""
    return _unique(
        method
        for cls in _token_grants(server)
        for method in cls.TOKEN_ENDPOINT_AUTH_METHODS
    )


def grant_fields(server) -> dict:
    """grant_types, response_types/modes, token endpoint auth, PKCE, RFC 9207."""
    authorization = _authorization_grants(server)
    fields: dict[str, Any] = {
        "scopes_supported": list(server.scopes_supported),
        # RFC 8414 §2: every grant type, including those that never touch
        # /authorize (client_credentials, RFC 8628's device_code).
        "grant_types_supported": _unique(
            cls.GRANT_TYPE for cls in authorization + _token_grants(server)
        ),
        "response_types_supported": _unique(
            rt for cls in authorization for rt in sorted(cls.RESPONSE_TYPES)
        ),
        "response_modes_supported": _unique(
            mode for cls in authorization for mode in cls.RESPONSE_MODES
        ),
        "token_endpoint_auth_methods_supported": token_endpoint_auth_methods(server),
    }
    challenges = [
        ext for ext in _grant_extensions(server) if isinstance(ext, CodeChallenge)
    ]
    if challenges:
        # RFC 8414 §2: omitted means PKCE is not supported.
        fields["code_challenge_methods_supported"] = _unique(
            m for ext in challenges for m in ext.SUPPORTED_CODE_CHALLENGE_METHOD
        )
    # RFC 9207 §3: the iss parameter is in every authorization response.
    fields["authorization_response_iss_parameter_supported"] = _sends_iss(server)
    return fields


def _sends_iss(server) -> bool:
    # Authlib keeps no reference to an IssuerParameter once registered; the
    # hook it installs is a bound method of it.
    hooks = server._hooks.get("after_create_authorization_response", ())
    return any(
        isinstance(getattr(hook, "__self__", None), rfc9207.IssuerParameter)
        for hook in hooks
    )


# -- OpenID Connect ---------------------------------------------------------
def openid_fields(server) -> dict:
    """OIDC Discovery §3 fields that only an OpenID Provider has."""
    return {
        "subject_types_supported": list(SUBJECT_TYPES),
        # OIDC Core §15.1 makes RS256 mandatory; a client picks one of these
        # per registration (id_token_signed_response_alg), the key ring holds
        # a current key for each.
        "id_token_signing_alg_values_supported": sorted(
            SUPPORTED_ALGS, key=lambda alg: alg != DEFAULT_ALG
        ),
        "claims_supported": _unique(
            [*ID_TOKEN_CLAIMS, *(c for cs in SCOPE_CLAIMS.values() for c in cs)]
        ),
        "prompt_values_supported": list(PROMPT_VALUES),
        # OIDC Core §5.5: the claims request parameter is not supported.
        "claims_parameter_supported": False,
        # OIDC Core §6: no request objects; /authorize answers them with
        # request_not_supported / request_uri_not_supported. Said outright
        # since OIDC Discovery §3 makes request_uri_parameter_supported
        # default to true when omitted.
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


def logout_fields() -> dict:
    """OIDC Back-Channel Logout 1.0 §2.1 (app/logout/backchannel.py sends
    logout tokens carrying sid) and Front-Channel Logout §3 (none)."""
    return {
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }


# -- validation ---------------------------------------------------------------
def validate_metadata(metadata: dict) -> None:
    """Check ``metadata`` with Authlib's RFC 8414 (+ RFC 9207) and OIDC
    Discovery (+ RP-Initiated Logout) models; raises MetadataError.

    A development issuer on plain http off loopback is checked as if it
    were https (production refuses such an issuer in app/config.py), so the
    rest of the document is still validated.
    """
    checked = _as_secure_transport(metadata)
    try:
        rfc8414.AuthorizationServerMetadata(checked).validate(
            metadata_classes=[rfc9207.AuthorizationServerMetadata]
        )
        OpenIDProviderMetadata(checked).validate(
            metadata_classes=[rpinitiated.OpenIDProviderMetadata]
        )
    except ValueError as exc:
        raise MetadataError(f"discovery metadata is invalid: {exc}") from exc


def _as_secure_transport(metadata: dict) -> dict:
    issuer = metadata.get("issuer", "")
    if not issuer.startswith("http://") or is_secure_transport(issuer):
        return metadata
    https = "https://" + issuer.removeprefix("http://")
    return {
        key: https + value.removeprefix(issuer)
        if isinstance(value, str) and value.startswith(issuer)
        else value
        for key, value in metadata.items()
    }
