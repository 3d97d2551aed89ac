"""Queueing email: rendered from templates now, sent by the outbox worker.

A message is an outbox row, so it exists exactly when the change it tells
about was committed, and survives a mail server that is down. Its body is
sealed under the key-encryption key: bodies carry single-use links, and a
copy of the database must not hand them out.
"""

import base64
import json
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app, render_template

from app.outbox.services import Delivery, enqueue

KIND = "email"
_PURPOSE = "outbox-email-body"


def queue_email(
    to: str, template: str, dedupe_key: str | None = None, **context
) -> int | None:
    """Render templates/mail/<template>.{txt,html} and queue it; no commit.

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
    sealed = current_app.extensions["latchkey"].encryption.encrypt(
        json.dumps({"text": body.lstrip("\n"), "html": html}).encode(), _PURPOSE
    )
    return {
        "to": to,
        "subject": subject.strip(),
        "sealed_body": base64.b64encode(sealed).decode(),
    }


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
    return json.loads(encryption.decrypt(sealed, _PURPOSE))


def deliver_email(delivery: Delivery) -> None:
    """Outbox handler: hand the message to the configured backend."""
    services = current_app.extensions["latchkey"]
    payload = delivery.payload
    message = build_message(payload, open_body(payload), services.settings.mail_from)
    services.mailer.send(message)


HANDLERS = {KIND: deliver_email}
