"""Latchkey as the side-by-side harness sees it: a fresh database seeded
with the clients of bench/latchkey.json, and a server on 127.0.0.1:5100
with production settings (loopback http issuer), its pid in
bench/run/latchkey.pid and its settings in bench/run/latchkey.env.json
(read by bench/mint.py).

Servers: ``granian`` (Rust HTTP server, WSGI interface: what production
runs, deploy/serve.py, and the default), ``sync`` (gunicorn sync workers)
and ``gthread`` (gunicorn threads, keep-alive), each with ``workers``
processes.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.data import Database

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TARGET = BENCH / "latchkey.json"
RUN = BENCH / "run"
ENV_FILE = RUN / "latchkey.env.json"
PID_FILE = RUN / "latchkey.pid"
PORT = 5100
BENCH_ACCOUNT_EMAIL = "refresh@bench.example"
REFRESH_SCOPE = "openid offline_access"
SERVERS = ("sync", "gthread", "granian")


def latchkey_env(database_url: str, redis_url: str | None, port: int = PORT) -> dict:
    """Production settings for a loopback bench: fresh secrets, no demo
    data, Redis for the rate limits when given (as in production)."""
    env = {
        "LATCHKEY_ENV": "production",
        "LATCHKEY_ISSUER": f"http://127.0.0.1:{port}",
        "LATCHKEY_DATABASE_URL": database_url,
        "LATCHKEY_SECRET_KEY": secrets.token_urlsafe(32),
        "LATCHKEY_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "LATCHKEY_DEMO_DATA": "false",
        "LATCHKEY_RATELIMIT_PREFIX": f"latchkey-bench-{secrets.token_hex(4)}",
        # No retry window: the harness replays a few used refresh tokens
        # seconds later, and they must be refused, as the peer refuses them.
        "LATCHKEY_REFRESH_GRACE_SECONDS": "0",
    }
    if redis_url:
        env["LATCHKEY_REDIS_URL"] = redis_url
    else:  # production refuses per-process limits unless told (config.py)
        env["LATCHKEY_RATELIMIT_PER_PROCESS"] = "true"
    return env


def seed(env: dict) -> None:
    """Schema from the migrations, signing keys, the three clients of the
    target file with its secrets, and the account refresh grants belong to."""
    from flask_migrate import upgrade

    from app import create_app
    from app.accounts.services import create_account
    from app.clients.services import create_client
    from app.extensions import db
    from app.keys.admin import ensure_keys
    from app.security.opaque_tokens import hash_token

    target = json.loads(TARGET.read_text())
    app = create_app(env)
    with app.app_context():
        upgrade()
        services = app.extensions["latchkey"]
        ensure_keys(services.keys)
        made = [
            create_client(
                "bench machine client",
                grant_types=["client_credentials"],
                client_id=target["client_credentials"]["client_id"],
            ),
            create_client(
                "bench resource server",
                grant_types=["client_credentials"],
                may_introspect=True,
                client_id=target["introspection"]["client_id"],
            ),
            create_client(
                "bench relying party",
                redirect_uris=["http://127.0.0.1:3999/cb"],
                grant_types=["authorization_code", "refresh_token"],
                client_id=target["refresh"]["client_id"],
            ),
        ]
        sections = ("client_credentials", "introspection", "refresh")
        for (client, _), section in zip(made, sections, strict=True):
            # The target file's secret, stored as create_client stores one.
            client.secret_hash = hash_token(target[section]["client_secret"])
        db.session.commit()
        create_account(
            services.passwords, BENCH_ACCOUNT_EMAIL, None, email_verified=True
        )
        # Services leave committing to the unit of work (app/unit_of_work.py).
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def target_for(port: int) -> Path:
    """bench/latchkey.json, or for another port a copy of it under
    bench/run/ with that port and absolute paths."""
    if port == PORT:
        return TARGET
    text = TARGET.read_text().replace(f"127.0.0.1:{PORT}", f"127.0.0.1:{port}")
    target = json.loads(text.replace(" mint.py ", f" {BENCH / 'mint.py'} "))
    target["pid_files"] = [str(PID_FILE)]
    path = RUN / f"latchkey-{port}.json"
    path.write_text(json.dumps(target, indent=2))
    return path


def server_command(kind: str, workers: int, threads: int, port: int) -> list[str]:
    bind = f"127.0.0.1:{port}"
    if kind == "granian":
        return [
            str(Path(sys.executable).with_name("granian")),
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(max(1, threads)),
            "--pid-file",
            str(PID_FILE),
            "--log-level",
            "warning",
            "app.wsgi:app",
        ]
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers)]
    if kind == "gthread":
        command += ["-k", "gthread", "--threads", str(max(2, threads))]
    return [
        *command,
        "-b",
        bind,
        "--pid",
        str(PID_FILE),
        "--graceful-timeout",
        "2",
        "--log-level",
        "warning",
        "app.wsgi:app",
    ]


class LatchkeyServer:
    """A fresh database and the server on it; ``stop()`` ends both."""

    def __init__(
        self,
        db_kind: str,
        kind="granian",
        workers=2,
        threads=1,
        redis=None,
        port=PORT,
        extra_env: dict | None = None,
    ):
        if kind not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}")
        RUN.mkdir(exist_ok=True)
        self.port = port
        self.target = target_for(port)
        self.database = Database(db_kind)
        self.proc: subprocess.Popen | None = None
        try:
            self.env = latchkey_env(self.database.url, redis, port)
            self.env.update(extra_env or {})
            ENV_FILE.write_text(json.dumps(self.env))
            ENV_FILE.chmod(0o600)
            seed(self.env)
            self.command = server_command(kind, workers, threads, port)
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
        self.log = (RUN / "latchkey.log").open("w")
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**clean, **self.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{self.port}/healthz"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log.name}")
            try:
                requests.get(url, timeout=5).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"server did not start; see {self.log.name}")
        if not PID_FILE.exists():  # granian writes it a moment later
            PID_FILE.write_text(f"{self.proc.pid}\n")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for path in (PID_FILE, ENV_FILE):
            path.unlink(missing_ok=True)
        self.database.drop()


def run_harness_bench(
    perf: Path, target: Path, scenario: str, seconds: float, conns: int, *extra: str
) -> str:
    """Drive one ``scenario`` for ``seconds`` at ``conns`` connections with
    the harness's bench.py (``perf``: a harness_copy); its printed report.
    Raises CalledProcessError when the harness fails."""
    return subprocess.run(
        [
            sys.executable,
            str(perf / "bench.py"),
            str(target),
            "-s",
            scenario,
            "-d",
            str(seconds),
            "-c",
            str(conns),
            "-t",
            str(min(2, conns)),
            *extra,
        ],
        cwd=perf,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def harness_copy(source: Path, into: Path) -> Path:
    """A writable copy of the shared harness (it writes run/ and results/
    beside its scripts, and installs the peer there)."""
    dest = into / "perf"
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("run", "results"))
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return dest
