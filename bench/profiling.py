"""Where a request's time goes: SQL statements per request (in-process, the
Flask test client) and py-spy sampling profiles of the live workers."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import event

from app.extensions import db

LINE_NUMBER = re.compile(r":\d+\)$")


def count_statements(app, send) -> list[str]:
    """The SQL statements of one request, made by ``send(test_client)``,
    after one warm-up request (the first request of a process also loads the
    signing keys)."""
    client = app.test_client()
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):
        seen.append(" ".join(statement.split())[:160])

    send(client)
    event.listen(engine, "before_cursor_execute", record)
    try:
        answer = send(client)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    if answer.status_code != 200:
        raise RuntimeError(f"{answer.request.path} answered {answer.status_code}")
    return seen


def py_spy() -> str:
    """py-spy on PATH or beside this Python (pip install py-spy)."""
    beside = Path(sys.executable).with_name("py-spy")
    found = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
    if found is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return found


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """Sample gunicorn's workers (children of ``pid``) into collapsed stacks."""
    return subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",  # only the thread holding the GIL: where CPU goes
            "--rate",
            "200",
            "--duration",
            str(max(1, round(seconds))),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize(collapsed: Path, top: int = 30) -> list[tuple[float, float, str]]:
    """(inclusive %, self %, frame) of the frames that cost most, from a
    py-spy raw (collapsed stack) file. Idle worker threads are left out."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(_idle(f) for f in frames[-2:]) or not count.isdigit():
            continue  # idle, or a torn line (py-spy writes one now and then)
        n = int(count)
        total += n
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        for frame in set(frames):
            inclusive[_short(frame)] += n
        own[_short(frames[-1])] += n
    if not total:
        return []
    return [
        (100 * n / total, 100 * own[frame] / total, frame)
        for frame, n in inclusive.most_common(top)
    ]


def _idle(frame: str) -> bool:
    return any(
        word in frame
        for word in ("select (selectors", "wait (threading", "accept (socket", "sleep")
    )


# A sample counts for a request when one of these frames is on its stack:
# the WSGI call, or gunicorn writing the answer after it.
IN_REQUEST = ("Flask.__call__ (", "handle_request (gunicorn")


def in_request(frames: list[str]) -> bool:
    """True for a sample taken while a worker served a request (the master
    process and workers waiting for a connection are left out)."""
    return any(marker in f for f in frames for marker in IN_REQUEST)


def _short(frame: str) -> str:
    # "func (path/to/site-packages/pkg/mod.py:12)" -> "func (pkg/mod.py)"
    name, _, where = frame.partition(" (")
    for marker in ("site-packages/", "/work/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            if marker == "/work/":  # a worktree's name: /work/<tree>/app/...
                where = where.partition("/")[2]
    where = LINE_NUMBER.sub(")", where)
    return f"{name} ({where}"


PACKAGES = (
    ("app/", "latchkey (app/)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("flask_sqlalchemy/", "SQLAlchemy"),
    ("psycopg/", "database driver"),
    ("sqlite3/", "database driver"),
    ("authlib/", "Authlib"),
    ("joserfc/", "JOSE (joserfc + cryptography)"),
    ("cryptography/", "JOSE (joserfc + cryptography)"),
    ("flask_limiter/", "rate limiter"),
    ("limits/", "rate limiter"),
    ("flask_wtf/", "Flask + Werkzeug"),
    ("flask/", "Flask + Werkzeug"),
    ("werkzeug/", "Flask + Werkzeug"),
    ("gunicorn/", "gunicorn"),
)


def by_package(collapsed: Path) -> list[tuple[float, str]]:
    """Share of samples whose innermost frame of a known package is in that
    package (a sample in json or threading inside SQLAlchemy counts for
    SQLAlchemy); "other" for the rest."""
    shares: collections.Counter = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames or any(_idle(f) for f in frames[-2:]):
            continue
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        shares[_package(frames)] += n
    if not total:
        return []
    return [(100 * n / total, name) for name, n in shares.most_common()]


def _package(frames: list[str]) -> str:
    for frame in reversed(frames):
        where = frame.partition(" (")[2]
        for marker, name in PACKAGES:
            if f"/{marker}" in where or where.startswith(marker):
                return name
    return "other (stdlib, threads)"
