"""Logging: one access line per request, a request id in every record,
JSON or text (LATCHKEY_LOG_FORMAT).

Paths and query strings carry secrets: authorization codes and `state` in
a redirect's query (RFC 6749 §4.1.2), reset and verification tokens in
emailed links (/password/reset/<token>). So the access line names the
route *pattern* (``/password/reset/<token>``), never the path, never the
query, and no header but X-Request-ID is read.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request

from app.metrics import KNOWN_METHODS

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept when it looks like one (a UUID, a proxy's hex id);
# anything else (too long, spaces, control characters that would forge log
# lines) is replaced by our own.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

access_log = logging.getLogger("latchkey.access")
_HANDLER_MARK = "_latchkey_handler"


def request_id() -> str:
    """This request's id: the sane incoming X-Request-ID, else a new one."""
    if "request_id" not in g:
        g.request_id = choose_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
    return g.request_id


def choose_request_id(incoming: str) -> str:
    """``incoming`` (an X-Request-ID header's value, "" when absent) if it
    looks like an id, else 32 new random hex digits."""
    return incoming if _SANE_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(16)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request) to every record,
    and drops the Werkzeug dev server's request lines, which print the raw
    path and query (the access line of _log_access replaces them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Werkzeug's per-request lines ("<addr> - - [date] ...") carry the
        # request line, query included, also in its error lines.
        if record.name == "werkzeug" and " - - [" in str(record.msg):
            return False
        if not hasattr(record, "request_id"):  # the access line brings its own
            record.request_id = request_id() if has_request_context() else "-"
        return True


# One encoder for every line: json.dumps with any argument but the object
# builds a new JSONEncoder per call (6 of the 23 µs a line's formatting cost).
_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id,
    the access fields when present, and a traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        line.update(getattr(record, "access", {}))
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return _LINE_ENCODER.encode(line)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(log_format: str) -> None:
    """Send records of level INFO and up to stderr in ``log_format``
    ("json" or "text"). Left alone when the root logger already has a
    handler of someone else's (pytest's, an embedding application's)."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]
    if root.handlers and not ours:
        return
    handler = ours[0] if ours else logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    if not handler.filters:
        handler.addFilter(RequestIdFilter())
    if not ours:
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def _start() -> None:
    g.access_started = time.perf_counter()
    request_id()


def _log_access(response: Response) -> Response:
    """after_request hook: the X-Request-ID header and the access line.

    It runs for every request, the machine endpoints' included, so it reads
    the request context once, not once per field.
    """
    from app.web.sessions import client_ip

    req = request._get_current_object()  # type: ignore[attr-defined]
    rid = request_id()
    response.headers[REQUEST_ID_HEADER] = rid
    started = g.get("access_started", time.perf_counter())
    rule = req.url_rule
    write_access_line(
        req.method,
        rule.rule if rule is not None else "<unmatched>",
        response.status_code,
        time.perf_counter() - started,
        client_ip(),
        rid,
    )
    return response


def write_access_line(
    method: str, route: str, status: int, seconds: float, ip: str, rid: str
) -> None:
    """Write one request's access line: ``route`` is the matched rule's
    pattern (never the path), ``seconds`` the time to answer, ``ip`` the
    client's address, ``rid`` its request id. The after_request hook calls
    it, and so does what answers below Flask (app/oauth/documents.py).

    The record goes straight to the logger's handlers: ``Logger.info``
    would also walk the stack for a caller that no line Latchkey writes
    shows."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    method = method if method in KNOWN_METHODS else "OTHER"
    duration_ms = round(seconds * 1000, 1)
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
        "client_ip": ip,
    }
    access_log.handle(
        access_log.makeRecord(
            access_log.name, logging.INFO, "", 0,
            "%s %s %s %sms %s", (method, route, status, duration_ms, ip), None,
            extra={"access": fields, "request_id": rid},
        )
    )  # fmt: skip


def init_request_logging(app: Flask, log_format: str) -> None:
    """Configure the log output and log one line per request."""
    configure_logging(log_format)
    # First, so a request another hook answers early is timed and logged too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_log_access)
