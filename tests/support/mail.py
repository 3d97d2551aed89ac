"""Mail as the tests read it: the outbox worker run once, then the .eml
files the files backend wrote to the run's ``mail_dir`` (LATCHKEY_MAIL_DIR).
tests/mail reads a real SMTP server's inbox instead (its conftest)."""

import email
import re
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from app.extensions import db
from app.outbox.services import run_once


def deliver_mail(app) -> int:
    """Run the outbox worker of ``app`` once; how many messages it handled."""
    with app.app_context():
        try:
            return run_once()
        finally:
            db.session.remove()


def mailed(mail_dir: Path, to: str) -> list[EmailMessage]:
    """The messages written for ``to``, oldest first (the files backend
    names each file after its time and recipient)."""
    name = to.replace("@", "_at_")
    messages = [
        email.message_from_bytes(path.read_bytes(), policy=default_policy)
        for path in sorted(mail_dir.glob(f"*-{name}.eml"))
    ]
    return [m for m in messages if m["To"] == to]


def mailed_link(mail_dir: Path, to: str, path: str) -> str:
    """The link to ``path`` in the latest message to ``to`` that has one.
    Raises AssertionError if none has."""
    for message in reversed(mailed(mail_dir, to)):
        text = message.get_body(("plain",)).get_content()
        found = re.search(rf"(https?://\S+{re.escape(path)}\S+)", text)
        if found:
            return found.group(1)
    raise AssertionError(f"no {path} link mailed to {to}")
