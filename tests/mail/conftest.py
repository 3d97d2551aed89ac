"""A real SMTP server on 127.0.0.1 (aiosmtpd) and an app whose outbox worker
sends to it through the SMTP backend, as production would."""

import email
import re
import threading
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from app import create_app
from app.extensions import db
from app.outbox.services import run_once
from tests.conftest import free_port


class Inbox:
    """What the SMTP server received, as parsed messages."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd)
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def text(message: EmailMessage) -> str:
        return message.get_body(("plain",)).get_content()

    def link(self, address: str, path: str) -> str:
        """The single-use link to ``path`` in the latest mail to ``address``."""
        for message in reversed(self.to(address)):
            found = re.search(
                rf"(https?://\S+{re.escape(path)}\S+)", self.text(message)
            )
            if found:
                return found.group(1)
        raise AssertionError(f"no {path} link mailed to {address}")


class SMTPServer:
    def __init__(self, port: int):
        self.port = port
        self.inbox = Inbox()
        self.controller = None

    def start(self):
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server():
    server = SMTPServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_worker(app, base_env, smtp_server):
    """Runs the outbox worker once, sending email through the SMTP backend."""
    worker_app = create_app(
        {
            **base_env,
            "LATCHKEY_MAIL_BACKEND": "smtp",
            "LATCHKEY_SMTP_HOST": "127.0.0.1",
            "LATCHKEY_SMTP_PORT": str(smtp_server.port),
        }
    )

    def work(now=None) -> int:
        with worker_app.app_context():
            try:
                return run_once(now=now)
            finally:
                db.session.remove()

    yield work
    with worker_app.app_context():
        db.engine.dispose()
