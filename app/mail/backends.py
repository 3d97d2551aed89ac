"""Where email goes: an SMTP server, or (development) .eml files plus a log
line. Both take a ready EmailMessage; a failure raises, and the outbox
retries."""

import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 10


class MailBackend(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class FileBackend:
    def __init__(self, directory: Path):
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{message['To'].replace('@', '_at_')}.eml"
        path = self.directory / name
        path.write_bytes(bytes(message))
        log.warning(
            "email to %s (%s) written to %s", message["To"], message["Subject"], path
        )


class SMTPBackend:
    def __init__(self, host: str, port: int, security: str, user="", password=""):
        self.host, self.port, self.security = host, port, security
        self.user, self.password = user, password

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=SMTP_TIMEOUT, context=context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(message)


def backend_from_settings(settings, instance_path: str) -> MailBackend:
    if settings.mail_backend == "smtp":
        return SMTPBackend(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.smtp_user,
            settings.smtp_password,
        )
    return FileBackend(Path(settings.mail_dir or Path(instance_path) / "mail"))
