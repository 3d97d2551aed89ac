"""Queueing email: rendered from templates now, sent by the outbox worker.

A message is an outbox row, so it exists exactly when the change it tells
about was committed, and survives a mail server that is down. Its body is
sealed under the key-encryption key: bodies carry single-use links, and a
copy of the database must not hand them out.
"""

import base64
import json
import secrets
import zlib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app, render_template
from markupsafe import escape

from app.outbox.services import Delivery, enqueue

KIND = "email"
ZLIB = "zlib"  # a payload's body_encoding when the body was compressed
_PURPOSE = "outbox-email-body"


def queue_email(
    to: str, template: str, dedupe_key: str | None = None, **context
) -> int | None:
    """Render templates/mail/<template>.{txt,html} and queue it.

    The subject is the text template's first line. ``dedupe_key`` makes a
    re-run of a batch job queue each notice once.
    """
    return enqueue(KIND, email_payload(to, template, **context), dedupe_key=dedupe_key)


def email_payload(to: str, template: str, **context) -> dict:
    """The outbox payload of one email: {"to", "subject", "sealed_body"},
    the rendered text and HTML sealed under the KEK. Needs an app context;
    for callers that insert many outbox rows in one statement."""
    settings = current_app.config["LATCHKEY"]
    context.setdefault("issuer", settings.issuer)
    text = render_template(f"mail/{template}.txt", **context)
    subject, _, body = text.partition("\n")
    html = render_template(f"mail/{template}.html", subject=subject, **context)
    return {
        "to": to,
        "subject": subject.strip(),
        "sealed_body": _seal({"text": body.lstrip("\n"), "html": html}),
    }


class MailMerge:
    """One notice to many people: the templates rendered once, each
    recipient's address put in afterwards, each body sealed on its own.

    For bulk notices whose templates use no account attribute but
    ``account.email`` (incident notices to a million accounts: rendering
    each is most of their cost). The address is HTML-escaped where the HTML
    template printed it, as autoescaping would have.
    """

    def __init__(self, template: str, **context):
        self._marker = f"latchkey-merge-{secrets.token_hex(8)}"
        settings = current_app.config["LATCHKEY"]
        context.setdefault("issuer", settings.issuer)
        account = _MergeAccount(email=self._marker)
        text = render_template(f"mail/{template}.txt", account=account, **context)
        subject, _, body = text.partition("\n")
        if self._marker in subject:
            raise ValueError(f"mail/{template}: the subject names the account")
        self._subject = subject.strip()
        self._text = body.lstrip("\n")
        self._html = render_template(
            f"mail/{template}.html", subject=subject, account=account, **context
        )

    def payload(self, to: str) -> dict:
        """The outbox payload for ``to``, as ``email_payload`` makes it."""
        body = {
            "text": self._text.replace(self._marker, to),
            "html": self._html.replace(self._marker, str(escape(to))),
        }
        return {
            "to": to,
            "subject": self._subject,
            "sealed_body": _seal(body, compress=True),
            "body_encoding": ZLIB,
        }


@dataclass(frozen=True)
class _MergeAccount:
    email: str


def _seal(body: dict, compress: bool = False) -> str:
    plaintext = json.dumps(body).encode()
    if compress:
        # Only for notices that carry no secret (MailMerge): compressing a
        # secret beside text an attacker chose would leak it through the
        # length (the CRIME attack). A third the size, and under
        # PostgreSQL's 2 kB TOAST threshold, which halves a million-row
        # insert.
        plaintext = zlib.compress(plaintext, 1)
    sealed = current_app.extensions["latchkey"].encryption.encrypt(plaintext, _PURPOSE)
    return base64.b64encode(sealed).decode()


def build_message(payload: dict, body: dict, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="latchkey")
    message.set_content(body["text"])
    message.add_alternative(body["html"], subtype="html")
    return message


def open_body(payload: dict) -> dict:
    """The {"text", "html"} of a queued email; needs the KEK (app context)."""
    encryption = current_app.extensions["latchkey"].encryption
    sealed = base64.b64decode(payload["sealed_body"])
    plaintext = encryption.decrypt(sealed, _PURPOSE)
    if payload.get("body_encoding") == ZLIB:
        plaintext = zlib.decompress(plaintext)
    return json.loads(plaintext)


def deliver_email(delivery: Delivery) -> None:
    """Outbox handler: hand the message to the configured backend."""
    services = current_app.extensions["latchkey"]
    payload = delivery.payload
    message = build_message(payload, open_body(payload), services.settings.mail_from)
    services.mailer.send(message)


HANDLERS = {KIND: deliver_email}
