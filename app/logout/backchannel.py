"""OIDC Back-Channel Logout 1.0: telling relying parties, server to server,
that a session, grant, device or account was cut off.

The cut-off services call one ``queue_logout_for_*`` function, which adds a
single "backchannel_fanout" row to their transaction: constant cost however
many grants are affected. The outbox worker later expands that row into one
"backchannel_logout" row per (client, session or subject) and POSTs each
logout token on its own, so one relying party being down delays only its
own notices.

What a relying party is told:
- a grant made in a browser session names that session (``sid`` and
  ``sub``), so the relying party ends just the sessions it built on it;
- a grant with no session (a TV linked by code) can only be named by its
  ``sub``, which asks the relying party to end all of that person's sessions
  there (Back-Channel Logout §2.4): the safe side when a device is cut off.
"""

from __future__ import annotations

from datetime import datetime

import requests
from flask import current_app
from sqlalchemy import or_, select, tuple_

from app.extensions import db
from app.models import Account, Client, Grant
from app.models.base import new_id, utcnow
from app.models.key import DEFAULT_ALG
from app.outbox.services import Delivery, DeliveryFailed, enqueue

FANOUT = "backchannel_fanout"
LOGOUT = "backchannel_logout"
# Back-Channel Logout §2.4: the member of ``events`` that makes a JWT a
# logout token.
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# Back-Channel Logout §2.4 recommends a short life, about two minutes.
LOGOUT_TOKEN_LIFETIME = 120
REQUEST_TIMEOUT = 5


# -- queueing, called by app.cutoff.services inside its transaction ----
def queue_logout_for_session(sid: str, account_id: str) -> None:
    """The browser session ``sid`` of ``account_id`` ended."""
    enqueue(
        FANOUT,
        {"cause": "session", "sid": sid, "account_id": account_id},
        dedupe_key=f"{FANOUT}:session:{sid}",
    )


def queue_logout_for_grant(grant_id: str) -> None:
    """The grant ``grant_id`` was revoked."""
    enqueue(
        FANOUT,
        {"cause": "grant", "grant_id": grant_id},
        dedupe_key=f"{FANOUT}:grant:{grant_id}",
    )


def queue_logout_for_device(device_id: str) -> None:
    """The device ``device_id`` was signed out."""
    enqueue(
        FANOUT,
        {"cause": "device", "device_id": device_id, "at": utcnow().isoformat()},
        dedupe_key=f"{FANOUT}:device:{device_id}",
    )


def queue_logout_for_account(account_id: str, cut_off_generation: int) -> None:
    """Every session and grant of ``account_id`` made in generation
    ``cut_off_generation`` was cut off ("sign out of all devices")."""
    enqueue(
        FANOUT,
        {
            "cause": "account",
            "account_id": account_id,
            "generation": cut_off_generation,
            "at": utcnow().isoformat(),
        },
        dedupe_key=f"{FANOUT}:account:{account_id}:{cut_off_generation}",
    )


def queue_logout_for_accounts(cut_offs: list[tuple[str, int]], key: str) -> None:
    """Each (account_id, generation) in ``cut_offs`` was cut off at once
    (`flask security force-password-reset --sign-out`, one batch): one row
    for the whole batch, told to relying parties as ``queue_logout_for_account``
    would tell each. ``key`` names the batch."""
    enqueue(
        FANOUT,
        {
            "cause": "accounts",
            "accounts": [
                [account_id, generation] for account_id, generation in cut_offs
            ],
            "at": utcnow().isoformat(),
        },
        dedupe_key=f"{FANOUT}:accounts:{key}",
    )


def queue_logout_for_everyone() -> None:
    """Every account's generation was bumped at once (`flask security
    sign-out-everyone`): one row, however many accounts."""
    at = utcnow().isoformat()
    enqueue(FANOUT, {"cause": "everyone", "at": at}, dedupe_key=f"{FANOUT}:all:{at}")


# -- the worker's side ------------------------------------------------------
def fan_out(delivery: Delivery) -> None:
    """Outbox handler for FANOUT: queue one LOGOUT per affected relying party
    that registered a backchannel_logout_uri and per session (or subject)."""
    payload = delivery.payload
    cause = payload["cause"]
    affected = (
        select(Grant.client_id, Grant.session_sid, Grant.account_id)
        .join(Client, Client.client_id == Grant.client_id)
        .where(Client.backchannel_logout_uri.is_not(None))
        .where(Client.backchannel_logout_uri != "")
        .distinct()
    )
    if cause == "session":
        # By account first: grants.account_id is indexed, session_sid is not.
        affected = affected.where(
            Grant.account_id == payload["account_id"],
            Grant.session_sid == payload["sid"],
        )
        cause_key = f"session:{payload['sid']}"
    elif cause == "grant":
        affected = affected.where(Grant.id == payload["grant_id"])
        cause_key = f"grant:{payload['grant_id']}"
    elif cause == "device":
        affected = affected.where(
            Grant.device_id == payload["device_id"],
            _not_revoked_before(payload["at"]),
        )
        cause_key = f"device:{payload['device_id']}"
    elif cause == "account":
        affected = affected.where(
            Grant.account_id == payload["account_id"],
            Grant.account_generation == payload["generation"],
            _not_revoked_before(payload["at"]),
        )
        cause_key = f"account:{payload['generation']}"
    elif cause == "accounts":
        _fan_out_accounts(affected, payload, delivery.now)
        return
    elif cause == "everyone":
        # The grants live at the bump: made before it, in the generation
        # just before each account's current one (an account bumped again
        # since then had its own notice for the later generation).
        affected = affected.join(Account, Account.id == Grant.account_id).where(
            Grant.account_generation == Account.generation - 1,
            Grant.created_at <= datetime.fromisoformat(payload["at"]),
            _not_revoked_before(payload["at"]),
        )
        cause_key = f"all:{payload['at']}"
    else:
        raise ValueError(f"unknown back-channel logout cause {cause!r}")
    for client_id, sid, sub in db.session.execute(affected):
        _queue_logout_token(client_id, sub, sid, cause_key, delivery.now)


def _fan_out_accounts(affected, payload: dict, now: datetime) -> None:
    # The grants of each account made in the generation that was cut off,
    # named as a one-account cut-off names them, so that the relying party
    # hears once whichever of the two told it.
    generations = dict(payload["accounts"])
    affected = affected.where(
        tuple_(Grant.account_id, Grant.account_generation).in_(
            list(generations.items())
        ),
        _not_revoked_before(payload["at"]),
    )
    for client_id, sid, sub in db.session.execute(affected):
        _queue_logout_token(client_id, sub, sid, f"account:{generations[sub]}", now)


def _not_revoked_before(at: str):
    # A grant revoked before this cut-off had its own notice then.
    return or_(
        Grant.revoked_at.is_(None), Grant.revoked_at >= datetime.fromisoformat(at)
    )


def _queue_logout_token(
    client_id: str, sub: str, sid: str | None, cause_key: str, now: datetime
) -> None:
    if sid:
        # A session ends once: whatever ended it, the relying party needs to
        # hear about it once.
        key = f"bcl:{client_id}:sid:{sid}"
    else:
        key = f"bcl:{client_id}:sub:{sub}:{cause_key}"
    payload = {"client_id": client_id, "sub": sub}
    if sid:
        payload["sid"] = sid
    enqueue(LOGOUT, payload, dedupe_key=key, not_before=now)


def logout_token(client: Client, sub: str, sid: str | None = None) -> str:
    """A signed logout token for ``client`` (Back-Channel Logout §2.4),
    signed like the client's ID tokens. Needs an app context."""
    services = current_app.extensions["latchkey"]
    now = int(utcnow().timestamp())
    claims = {
        "iss": services.settings.issuer,
        "sub": sub,
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": new_id(),
        "events": {LOGOUT_EVENT: {}},
    }
    if sid:
        claims["sid"] = sid
    # Back-Channel Logout §2.4: no nonce, so that a logout token can never
    # pass for an ID token; §4.1: an explicit typ keeps JWT kinds apart.
    alg = client.id_token_signed_response_alg or DEFAULT_ALG
    return services.keys.sign(claims, alg, typ="logout+jwt")


def deliver_logout_token(delivery: Delivery) -> None:
    """Outbox handler for LOGOUT: POST the logout token to the client's
    backchannel_logout_uri; raises DeliveryFailed unless it answers 2xx."""
    payload = delivery.payload
    client = db.session.get(Client, payload["client_id"])
    if client is None or not client.backchannel_logout_uri:
        return  # the client, or its wish to be told, is gone: nothing to do
    token = logout_token(client, payload["sub"], payload.get("sid"))
    uri = client.backchannel_logout_uri
    try:
        # Back-Channel Logout §2.5: a form-encoded POST with logout_token.
        # Redirects are not followed: a POST must not be replayed elsewhere.
        response = requests.post(
            uri,
            data={"logout_token": token},
            timeout=REQUEST_TIMEOUT,
            allow_redirects=False,
            stream=True,
        )
    except requests.RequestException as exc:
        raise DeliveryFailed(f"{uri}: {type(exc).__name__}") from exc
    response.close()  # the body carries nothing we need
    # Back-Channel Logout §2.8: 200 means done; some frameworks turn an
    # empty 200 into 204, so any 2xx counts. Anything else is retried.
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"{uri} answered HTTP {response.status_code}")


HANDLERS = {FANOUT: fan_out, LOGOUT: deliver_logout_token}
