"""Refresh throughput as the tables age (issue 12 item 4).

    .venv/bin/python bench/aging.py --db postgresql --dead 1000000

Starts Latchkey on a fresh database (bench/sidebyside.py, production
settings), then measures rotating refreshes per second three times:

1. fresh: only the live grants the load uses;
2. aged: after inserting ``--dead`` refresh-token rows of grants revoked
   40 days ago (10 rotated tokens per grant, the rows a year of sign-outs
   leaves behind), in bulk;
3. purged: after ``flask maintenance purge`` (timed) deleted them again.

Each measurement: ``--clients`` threads, each rotating its own chain
(grant_type=refresh_token, RFC 6749 §6; every response's new token is
the next request's) for ``--duration`` seconds. Prints req/s and the
ratios aged/fresh and purged/fresh. A benchmark, not a test: figures
on the shared 2-core machine move by ±30%; only the ratios of one run
count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Account, Device, Grant, RefreshToken  # noqa: E402
from app.models.base import new_id, utcnow  # noqa: E402
from app.security.opaque_tokens import hash_token, new_token  # noqa: E402
from bench.sidebyside import (  # noqa: E402
    BENCH_ACCOUNT_EMAIL,
    REFRESH_SCOPE,
    TARGET,
    LatchkeyServer,
)

BATCH = 10_000
TOKENS_PER_DEAD_GRANT = 10


def rotate_for(url: str, client: tuple, chains: list[str], seconds: float) -> float:
    """Rotate every chain in its own thread for ``seconds``; req/s of 200s.
    Replaces each chain's token by the latest one, so the next run goes on."""
    counts = [0] * len(chains)
    failures = []
    stop = time.monotonic() + seconds

    def work(index: int) -> None:
        session = requests.Session()
        session.auth = client
        while time.monotonic() < stop:
            response = session.post(
                url + "/token",
                data={"grant_type": "refresh_token", "refresh_token": chains[index]},
                timeout=30,
            )
            if response.status_code != 200:
                failures.append(response.text[:200])
                return
            chains[index] = response.json()["refresh_token"]
            counts[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(chains))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"refresh failed: {failures[0]}")
    return sum(counts) / (time.monotonic() - started)


def insert_dead_rows(app, count: int) -> None:
    """``count`` refresh tokens of grants revoked 40 days ago (past every
    retention default), in bulk with SQLAlchemy Core."""
    long_ago = utcnow() - timedelta(days=40)
    with app.app_context():
        account = db.session.execute(
            select(Account).where(Account.email == BENCH_ACCOUNT_EMAIL)
        ).scalar_one()
        client_id = json.loads(TARGET.read_text())["refresh"]["client_id"]
        device_id = new_id()
        with db.engine.begin() as conn:
            conn.execute(
                insert(Device.__table__),
                [
                    {
                        "id": device_id,
                        "account_id": account.id,
                        "kind": "app",
                        "name": "aged",
                        "first_seen_at": long_ago,
                        "last_seen_at": long_ago,
                    }
                ],
            )
        made = 0
        while made < count:
            grants, tokens = [], []
            while len(tokens) < BATCH and made < count:
                grant_id = new_id()
                per_grant = min(TOKENS_PER_DEAD_GRANT, count - made)
                grants.append(
                    {
                        "id": grant_id,
                        "account_id": account.id,
                        "client_id": client_id,
                        "device_id": device_id,
                        "session_sid": None,
                        "scope": REFRESH_SCOPE,
                        "account_generation": account.generation,
                        "auth_time": long_ago,
                        "amr": ["pwd"],
                        "acr": "0",
                        "created_at": long_ago,
                        "revoked_at": long_ago,
                        "live_seq": per_grant - 1,
                        "seq_counter": per_grant - 1,
                        "last_refresh_at": long_ago,
                    }
                )
                tokens += [
                    {
                        "token_hash": hash_token(new_token()),
                        "grant_id": grant_id,
                        "seq": seq,
                        "created_at": long_ago,
                    }
                    for seq in range(per_grant)
                ]
                made += per_grant
            with db.engine.begin() as conn:
                conn.execute(insert(Grant.__table__), grants)
                conn.execute(insert(RefreshToken.__table__), tokens)
        if db.engine.dialect.name == "postgresql":
            # Fresh statistics, as autovacuum would have after a year.
            with db.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as conn:
                conn.exec_driver_sql("ANALYZE")
        db.session.remove()


def refresh_rows(app) -> int:
    with app.app_context():
        count = db.session.execute(select(func.count()).select_from(RefreshToken))
        value = count.scalar_one()
        db.session.remove()
        return value


def run_purge(env: dict) -> float:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "flask", "maintenance", "purge"],
        cwd=ROOT,
        env={**clean, **env, "FLASK_APP": "app"},
        check=True,
    )
    return time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--dead", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)

    server = LatchkeyServer(
        args.db,
        kind="gthread",
        workers=args.workers,
        threads=args.threads,
        redis=args.redis or None,
    )
    try:
        from bench.mint import mint_refresh

        app = create_app(server.env)
        with app.app_context():
            chains = mint_refresh(args.clients)
            db.session.remove()
        client_section = json.loads(TARGET.read_text())["refresh"]
        client = (client_section["client_id"], client_section["client_secret"])
        url = f"http://127.0.0.1:{server.port}"
        rotate_for(url, client, chains, 3)  # warm-up: imports, pools, caches
        results = {"db": args.db, "dead_rows": args.dead, "clients": args.clients}
        results["fresh_rps"] = rotate_for(url, client, chains, args.duration)
        started = time.monotonic()
        insert_dead_rows(app, args.dead)
        results["insert_s"] = round(time.monotonic() - started, 1)
        results["rows_aged"] = refresh_rows(app)
        results["aged_rps"] = rotate_for(url, client, chains, args.duration)
        results["purge_s"] = round(run_purge(server.env), 1)
        results["rows_purged"] = refresh_rows(app)
        results["purged_rps"] = rotate_for(url, client, chains, args.duration)
        for name in ("fresh_rps", "aged_rps", "purged_rps"):
            results[name] = round(results[name], 1)
        results["aged/fresh"] = round(results["aged_rps"] / results["fresh_rps"], 2)
        results["purged/fresh"] = round(results["purged_rps"] / results["fresh_rps"], 2)
        print(json.dumps(results, indent=2))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
