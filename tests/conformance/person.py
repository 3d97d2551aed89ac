"""What the person does in Chromium: follow the link the relying party gives,
sign in and answer the questions Latchkey's pages ask, with the shared steps
of tests/support/chromium.py. Pages are found by their form fields, never by
path."""

from tests.conformance.relying_party import NodeRP
from tests.support.chromium import answer_consent, submit_sign_in

SIGN_IN = "#password"
CONSENT = "#approve"
BACK_AT_RP = "#rp"


def authorize(
    page, node_rp: NodeRP, client, account, scope: str, approve=True, **extra
) -> dict:
    """Open the authorization URL the RP built, sign in and allow (or deny,
    with ``approve=False``) as asked, until the browser is back at the RP's
    redirect URI.

    Returns {"start": what the RP sent (url, state, nonce), "result": what
    the RP made of the answer (tokens and verified ID token claims, or
    error)}."""
    start = node_rp.call(
        "/buildAuthorizationUrl",
        client_id=client.client_id,
        redirect_uri=node_rp.redirect_uri,
        scope=scope,
        **extra,
    )
    page.goto(start["url"])
    page.wait_for_selector(f"{SIGN_IN}, {CONSENT}, {BACK_AT_RP}")
    if page.locator(SIGN_IN).count():
        submit_sign_in(page, account)
        page.wait_for_selector(f"{CONSENT}, {BACK_AT_RP}")
    if page.locator(CONSENT).count():
        answer_consent(page, approve)
    page.wait_for_selector(BACK_AT_RP)
    assert page.url.startswith(node_rp.redirect_uri + "?")
    return {"start": start, "result": node_rp.result(start["state"])}
