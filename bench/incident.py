"""`flask security force-password-reset --all --sign-out` on N accounts.

    python bench/incident.py --db postgresql --accounts 200000

Makes a fresh database (bench/data.Database), migrates it, inserts N
accounts in bulk (a share of them SSO-only, each linked to a provider),
then runs the real command as an operator would, in a subprocess: first
stopped after a few batches (--max-batches), then resumed to the end, and
times both. Checks afterwards that every account was signed out once and
has exactly one notice of its kind, one event and one cut-off, and prints
the rate in accounts per second and the time a million would take at that
rate. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.keys.admin import ensure_keys  # noqa: E402
from app.models import (  # noqa: E402
    Account,
    FederatedIdentity,
    OutboxMessage,
    SecurityEvent,
)
from app.models.base import utcnow  # noqa: E402
from bench import cpu, data, server  # noqa: E402

HASH = "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"
SEED_BATCH = 10_000
INCIDENT = "bench-breach"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    p.add_argument("--accounts", type=int, default=200_000)
    p.add_argument("--sso-every", type=int, default=10, help="1 in N is SSO-only")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--stop-after", type=int, default=3, help="batches, first run")
    p.add_argument("--jobs", type=int, default=1, help="batches side by side")
    p.add_argument("--pg-admin-url", default=data.PG_ADMIN_URL)
    p.add_argument("--out", type=Path)
    p.add_argument(
        "--profile",
        type=Path,
        help="py-spy raw stacks of the resumed run, to this file",
    )
    p.add_argument(
        "--start-when",
        type=Path,
        help="after seeding, wait until this file exists (seeding need not be "
        "quiet; the timed runs should be)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="then wait up to this many seconds for a quiet machine",
    )
    return p.parse_args(argv)


def seed(app, count: int, sso_every: int) -> float:
    """Insert ``count`` accounts (every ``sso_every``th SSO-only); seconds."""
    t0 = time.perf_counter()
    now = utcnow()
    with app.app_context():
        for start in range(0, count, SEED_BATCH):
            rows, links = [], []
            for i in range(start, min(start + SEED_BATCH, count)):
                account_id = f"{i:032d}"
                sso = i % sso_every == 0
                rows.append(
                    {
                        "id": account_id,
                        "email": f"person-{i}@example.com",
                        "name": f"Person {i}",
                        "password_hash": None if sso else HASH,
                        "status": "active",
                        "generation": 0,
                        "email_verified": True,
                        "created_at": now,
                        "must_reset_password": False,
                    }
                )
                if sso:
                    links.append(
                        {
                            "account_id": account_id,
                            "provider": "upstream",
                            "subject": f"upstream-{i}",
                            "email": f"person-{i}@example.com",
                            "created_at": now,
                        }
                    )
            db.session.execute(insert(Account), rows)
            if links:
                db.session.execute(insert(FederatedIdentity), links)
            db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
        db.session.remove()
    return time.perf_counter() - t0


class BackendCPU:
    """CPU seconds used by the PostgreSQL server processes serving
    ``database`` while the block runs, read from /proc every 0.2 s (the
    server runs on this machine; a backend's last 0.2 s can be missed)."""

    def __init__(self, admin_url: str, database: str):
        self.admin_url, self.database = admin_url, database
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.seen.values())

    def _poll(self) -> None:
        if not self.database.startswith("latchkey_bench_"):
            return  # SQLite: no server
        import psycopg

        tick = os.sysconf("SC_CLK_TCK")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop.wait(0.2):
                pids = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                    (self.database,),
                ).fetchall()
                for (pid,) in pids:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().split()
                    except OSError:
                        continue
                    used = (int(fields[13]) + int(fields[14])) / tick
                    self.seen[pid] = max(self.seen.get(pid, 0.0), used)


def run_command(
    env: dict, *extra: str, profile: Path | None = None
) -> tuple[dict, float, float]:
    """The operator's command in a subprocess; (its JSON summary, seconds,
    CPU seconds the command itself used, the database server's not
    included)."""
    command = [
        sys.executable, "-m", "flask", "--app", "app", "security",
        "force-password-reset", "--all", "--sign-out", "--incident", INCIDENT,
        "--json", *extra,
    ]  # fmt: skip
    if profile is not None:
        # py-spy samples the command's threads (rate 100 Hz, raw stacks).
        spy = str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "--rate", "100", "--format", "raw",
                   "-o", str(profile), "--", *command]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # py-spy, when it wraps the command, prints lines of its own around the JSON.
    summary, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{") :])
    return summary, elapsed, cpu


def check(app, count: int, sso: int) -> dict:
    """What the runs left: each account signed out once, one notice each."""
    with app.app_context():

        def scalar(statement):
            return db.session.execute(statement).scalar()

        result = {
            "generation_1": scalar(select(func.count()).where(Account.generation == 1)),
            "other_generation": scalar(
                select(func.count()).where(Account.generation != 1)
            ),
            "notices": scalar(
                select(func.count()).where(OutboxMessage.kind == "email")
            ),
            "distinct_notice_keys": scalar(
                select(func.count(OutboxMessage.dedupe_key.distinct())).where(
                    OutboxMessage.kind == "email"
                )
            ),
            # The accounts' own events; operator and key events name none.
            "events": scalar(
                select(func.count()).where(SecurityEvent.account_id.is_not(None))
            ),
            "forced": scalar(
                select(func.count()).where(Account.must_reset_password.is_(True))
            ),
        }
        db.session.remove()
    assert result["generation_1"] == count, result
    assert result["notices"] == result["distinct_notice_keys"] == count, result
    assert result["events"] == count, result
    assert result["forced"] == count - sso, result
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    database = data.Database(args.db, args.pg_admin_url)
    version = database.server_version()
    try:
        env = {**os.environ, **server.latchkey_env(database.url, 5000)}
        env["LATCHKEY_PROVIDERS_FILE"] = str(_providers_file())
        env["LATCHKEY_PROVIDER_BENCH_SECRET"] = "bench"
        app = create_app({k: v for k, v in env.items() if k.startswith("LATCHKEY_")})
        with app.app_context():
            upgrade()
            ensure_keys(app.extensions["latchkey"].keys)
            db.session.remove()
        sso = len(range(0, args.accounts, args.sso_every))
        seeded = seed(app, args.accounts, args.sso_every)
        print(f"seeded {args.accounts} accounts ({sso} SSO-only) in {seeded:.1f} s")
        if args.start_when is not None:
            while not args.start_when.exists():
                time.sleep(1)
        if args.quiet_wait:
            busy = cpu.wait_for_quiet(args.quiet_wait)
            print(f"machine busy {busy:.0f}% of a core when the timed runs start")
        size = ("--batch-size", str(args.batch_size), "--jobs", str(args.jobs))
        load_before = os.getloadavg()
        stop = ("--max-batches", str(args.stop_after))
        server_cpu = BackendCPU(args.pg_admin_url, database.name)
        with server_cpu:
            first, t1, cpu1 = run_command(env, *size, *stop)
            print(f"first run, stopped after {first['batches']} batches: {t1:.1f} s")
            rest, t2, cpu2 = run_command(env, *size, profile=args.profile)
            print(f"resumed run to the end: {t2:.1f} s")
        load_after = os.getloadavg()
        checked = check(app, args.accounts, sso)
    finally:
        database.drop()
    total = t1 + t2
    rate = args.accounts / total
    report = {
        "db": args.db,
        "database": version,
        "accounts": args.accounts,
        "sso_only": sso,
        "batch_size": args.batch_size,
        "jobs": args.jobs,
        "seconds_first_run": round(t1, 2),
        "seconds_resumed_run": round(t2, 2),
        "seconds_total": round(total, 2),
        "accounts_per_second": round(rate),
        "command_cpu_seconds": round(cpu1 + cpu2, 2),
        "database_server_cpu_seconds": round(server_cpu.seconds, 2),
        # What a machine with nothing else to do would need, at most one
        # core busy at a time (the command waits for each statement).
        "cpu_bound_million_seconds": round(
            (cpu1 + cpu2 + server_cpu.seconds) * 1_000_000 / args.accounts, 1
        ),
        # The least a million could take with every core free: the command's
        # threads share one interpreter lock (one core at most), the server's
        # backends use the rest.
        "free_cores_million_seconds": round(
            _lower_bound(cpu1 + cpu2, server_cpu.seconds, args.jobs)
            * 1_000_000
            / args.accounts,
            1,
        ),
        # The machine's load average (1, 5, 15 min) before and after: the
        # wall-clock figures mean little on a machine busier than its cores.
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "cpu_count": os.cpu_count(),
        "million_extrapolated_seconds": round(1_000_000 / rate, 1),
        "first": first,
        "resumed": rest,
        "checked": checked,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _lower_bound(command_cpu: float, server_cpu: float, jobs: int) -> float:
    cores = os.cpu_count() or 1
    if jobs == 1:  # the command and its one backend wait for each other
        return command_cpu + server_cpu
    return max(command_cpu, (command_cpu + server_cpu) / min(cores, jobs + 1))


def _providers_file() -> Path:
    import tempfile

    path = Path(tempfile.gettempdir()) / "latchkey-bench-providers.toml"
    path.write_text(
        "[[provider]]\n"
        'slug = "upstream"\n'
        'name = "Example SSO"\n'
        'issuer = "https://sso.example.com"\n'
        'client_id = "latchkey"\n'
        'client_secret_env = "LATCHKEY_PROVIDER_BENCH_SECRET"\n'
    )
    return path


if __name__ == "__main__":
    sys.exit(main())
