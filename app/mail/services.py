"""Queueing email: rendered from templates now, sent by the outbox worker.

A message is an outbox row, so it exists exactly when the change it tells
about was committed, and survives a mail server that is down.
"""

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app, render_template

from app.outbox.services import Delivery, enqueue

KIND = "email"


def queue_email(
    to: str, template: str, dedupe_key: str | None = None, **context
) -> int | None:
    """Render templates/mail/<template>.{txt,html} and queue it; no commit.

    The subject is the text template's first line. ``dedupe_key`` makes a
    re-run of a batch job queue each notice once.
    """
    settings = current_app.config["LATCHKEY"]
    context.setdefault("issuer", settings.issuer)
    text = render_template(f"mail/{template}.txt", **context)
    subject, _, body = text.partition("\n")
    html = render_template(f"mail/{template}.html", subject=subject, **context)
    return enqueue(
        KIND,
        {"to": to, "subject": subject.strip(), "text": body.lstrip("\n"), "html": html},
        dedupe_key=dedupe_key,
    )


def build_message(payload: dict, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="latchkey")
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    return message


def deliver_email(delivery: Delivery) -> None:
    """Outbox handler: hand the message to the configured backend."""
    services = current_app.extensions["latchkey"]
    services.mailer.send(build_message(delivery.payload, services.settings.mail_from))


HANDLERS = {KIND: deliver_email}
