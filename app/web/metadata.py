"""How a protocol view says which discovery field it is.

A view decorated with ``@advertised_as("token_endpoint")`` is the URL that
field names; app/oauth/discovery.py reads the URL map for these marks, so
an endpoint cannot be mounted without being advertised, nor advertised
without being mounted. A protocol route that has no metadata field (the
discovery document itself, a page a person is sent to) says why with
``@not_advertised(...)``; tests/flows/test_discovery.py fails on any protocol
route that carries neither mark.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

MARK = "oauth_metadata"


@dataclass(frozen=True)
class Advertised:
    """The metadata field a view is, and the client authentication methods
    it accepts when those have their own field (RFC 8414 §2:
    ``revocation_endpoint_auth_methods_supported`` and the like)."""

    field: str
    auth_methods: tuple[str, ...] | None = None

    @property
    def auth_methods_field(self) -> str:
        return f"{self.field}_auth_methods_supported"


@dataclass(frozen=True)
class NotAdvertised:
    """A protocol route that no metadata field names, and why."""

    reason: str


def advertised_as(field: str, auth_methods: Sequence[str] | None = None) -> Callable:
    """Mark a view as the endpoint metadata ``field`` names (RFC 8414 §2,
    OIDC Discovery §3). Put it directly under ``@bp.route`` so that the
    function Flask registers carries the mark."""
    mark = Advertised(field, tuple(auth_methods) if auth_methods else None)

    def decorate(view):
        setattr(view, MARK, mark)
        return view

    return decorate


def not_advertised(reason: str) -> Callable:
    """Mark a protocol view that has no metadata field; ``reason`` says why."""

    def decorate(view):
        setattr(view, MARK, NotAdvertised(reason))
        return view

    return decorate


def mark_of(view) -> Advertised | NotAdvertised | None:
    """The mark a view function carries, if any."""
    return getattr(view, MARK, None)
