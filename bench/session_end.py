"""Ending one browser session that carries 10 .. 10,000 session-bound grants.

    python bench/session_end.py --db sqlite|postgresql [--sizes 10,10000]

For each size N, one account signs in once (one device, one session) and
that session carries N grants made without offline_access, each with a
refresh token (bulk inserts, untimed). Timed: the service every way of
ending a session calls, ``app.cutoff.services.end_session`` (what
/logout, /logout/end and an upstream's back-channel logout run), with its
commit, in an app context of this process; the median of ``--runs``. Before
each run the session is made live again (one row, untimed). Before and after,
one of the seeded refresh tokens is looked up the way /token and
/introspect do, to show the cut-off took. Prints the medians and the ratio
largest / smallest, and writes bench/results-session-end-<db>.json. Not a
test: nothing here asserts a time. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, event, insert, update  # noqa: E402

from app import create_app  # noqa: E402
from app.accounts.services import create_account  # noqa: E402
from app.clients.services import create_client  # noqa: E402
from app.cutoff.services import end_session  # noqa: E402
from app.extensions import db  # noqa: E402
from app.logout.backchannel import FANOUT  # noqa: E402
from app.models import (  # noqa: E402
    BrowserSession,
    Device,
    Grant,
    OutboxMessage,
    RefreshToken,
    SessionEnd,
)
from app.models.base import new_id, utcnow  # noqa: E402
from app.security.opaque_tokens import hash_token, new_token  # noqa: E402
from bench import data, server  # noqa: E402

BOUND_SCOPE = "openid email"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], required=True)
    p.add_argument("--sizes", default="10,10000", help="grants per session")
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--pg-admin-url", default=data.PG_ADMIN_URL)
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def seed(app, grants: int, client_id: str) -> dict:
    """One account, device and session with ``grants`` session-bound grants."""
    with app.app_context():
        account = create_account(
            app.extensions["latchkey"].passwords,
            f"session-{grants}@bench.example",
            data.PASSWORD,
            email_verified=True,
        )
        now = utcnow()
        device = Device(id=new_id(), account_id=account.id, name="bench browser")
        db.session.add(device)
        db.session.flush()  # no ORM relationship orders the two inserts
        session = BrowserSession(
            id_hash=hash_token(new_token()),
            sid=new_id(),
            account_id=account.id,
            device_id=device.id,
            account_generation=account.generation,
            auth_time=now,
            amr=["pwd"],
            created_at=now,
            expires_at=now.replace(year=now.year + 1),
        )
        db.session.add(session)
        db.session.commit()
        sid, device_id, account_id = session.sid, device.id, account.id
        sample = None
        with db.engine.begin() as conn:
            for start in range(0, grants, data.BATCH):
                rows, tokens = [], []
                for _ in range(min(data.BATCH, grants - start)):
                    grant_id, value = new_id(), new_token()
                    sample = sample or value
                    row = data._grant_row(
                        grant_id, account_id, client_id, device_id, now
                    )
                    row.update(session_sid=sid, session_bound=True, scope=BOUND_SCOPE)
                    rows.append(row)
                    tokens.append(
                        {
                            "token_hash": hash_token(value),
                            "grant_id": grant_id,
                            "seq": 0,
                            "created_at": now,
                        }
                    )
                conn.execute(insert(Grant.__table__), rows)
                conn.execute(insert(RefreshToken.__table__), tokens)
        db.session.remove()
    return {"sid": sid, "sample_refresh_token": sample}


def revive(app, sid: str) -> None:
    """Make the session live again and forget its logout notice (untimed)."""
    with app.app_context():
        db.session.execute(
            update(BrowserSession)
            .where(BrowserSession.sid == sid)
            .values(ended_at=None, end_cause=None)
        )
        db.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.dedupe_key == f"{FANOUT}:session:{sid}"
            )
        )
        db.session.commit()
        db.session.remove()


def time_end(app, sid: str, statements: list[str]) -> float:
    """One end_session call and its commit, in seconds."""

    def record(_conn, _cursor, statement, _params, _context, _many):
        statements.append(" ".join(statement.split())[:100])

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            t0 = time.perf_counter()
            ended = end_session(sid, SessionEnd.LOGOUT)
            db.session.commit()
            elapsed = time.perf_counter() - t0
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        db.session.remove()
    if not ended:
        raise RuntimeError("the session was not live")
    return elapsed


def refresh_token_live(app, token: str) -> bool:
    """As /token and /introspect see it (grant, account, device, session)."""
    with app.app_context():
        inspector = app.extensions["latchkey"].inspector
        live = inspector.refresh_token_record(token) is not None
        db.session.remove()
    return live


def measure(app, seeded: dict, runs: int) -> dict:
    sid, sample = seeded["sid"], seeded["sample_refresh_token"]
    times, statements = [], []
    live_before = refresh_token_live(app, sample)
    for _ in range(runs):
        revive(app, sid)
        statements.clear()
        times.append(time_end(app, sid, statements))
    dead_after = not refresh_token_live(app, sample)
    return {
        "runs": runs,
        "end_session_ms": [round(t * 1000, 3) for t in times],
        "median_ms": round(statistics.median(times) * 1000, 3),
        "cut_off_seen": live_before and dead_after,
        "statements": list(statements),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    database = data.Database(args.db, args.pg_admin_url)
    try:
        app = create_app(server.latchkey_env(database.url, server.free_port()))
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            client, _ = create_client(
                "bench relying party", redirect_uris=["http://127.0.0.1:9/callback"]
            )
            client_id = client.client_id
            db.session.commit()
            db.session.remove()
        results = {}
        for size in sizes:
            results[str(size)] = measure(app, seed(app, size, client_id), args.runs)
    finally:
        database.drop()
    smallest, largest = results[str(sizes[0])], results[str(sizes[-1])]
    report = {
        "db": args.db,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": results,
        "ratio_largest_to_smallest": round(
            largest["median_ms"] / smallest["median_ms"], 2
        ),
    }
    out = args.out or ROOT / "bench" / f"results-session-end-{args.db}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    for size in sizes:
        r = results[str(size)]
        print(
            f"{size:>8,} session-bound grants: median {r['median_ms']:.3f} ms, "
            f"{len(r['statements'])} statements, cut-off seen: {r['cut_off_seen']}"
        )
    print(f"ratio {sizes[-1]:,} / {sizes[0]:,}: {report['ratio_largest_to_smallest']}")
    for s in results[str(sizes[-1])]["statements"]:
        print(f"  {s}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
