"""Token pools for the side-by-side harness (the mint commands of
bench/latchkey.json). Bench-only: run beside a server started by
bench/compare.py, whose settings it reads from bench/run/latchkey.env.json.

    python bench/mint.py refresh --count N   # N refresh tokens of bench-rp
    python bench/mint.py access --count N    # N access tokens of bench-cc

Prints one token per line. Refresh tokens each get their own grant (one
app device per call, on the bench account), inserted in bulk with
SQLAlchemy Core: the rows are exactly what ``TokenIssuer.create_grant``
writes (the refresh token stored only as its SHA-256). Access tokens are
signed by the app's own ``TokenIssuer.access_token``, as /token would for a
client_credentials grant. Nothing here is reachable over HTTP.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Account, Client, Device, Grant, RefreshToken  # noqa: E402
from app.models.base import new_id, utcnow  # noqa: E402
from app.security.opaque_tokens import hash_token, new_token  # noqa: E402
from bench.sidebyside import (  # noqa: E402
    BENCH_ACCOUNT_EMAIL,
    ENV_FILE,
    REFRESH_SCOPE,
    TARGET,
)

BATCH = 5000


def _client_id(section: str) -> str:
    return json.loads(TARGET.read_text())[section]["client_id"]


def mint_refresh(count: int) -> list[str]:
    """``count`` live refresh tokens of bench-rp, each on its own grant."""
    now = utcnow()
    account = db.session.execute(
        select(Account).where(Account.email == BENCH_ACCOUNT_EMAIL)
    ).scalar_one()
    device_id = new_id()
    client_id = _client_id("refresh")
    out: list[str] = []
    with db.engine.begin() as conn:
        conn.execute(
            insert(Device.__table__),
            [
                {
                    "id": device_id,
                    "account_id": account.id,
                    "kind": "app",
                    "name": "bench",
                    "first_seen_at": now,
                    "last_seen_at": now,
                }
            ],
        )
        for start in range(0, count, BATCH):
            grants, tokens = [], []
            for _ in range(min(BATCH, count - start)):
                grant_id, value = new_id(), new_token()
                out.append(value)
                grants.append(
                    {
                        "id": grant_id,
                        "account_id": account.id,
                        "client_id": client_id,
                        "device_id": device_id,
                        "session_sid": None,
                        "scope": REFRESH_SCOPE,
                        "account_generation": account.generation,
                        "auth_time": now,
                        "amr": ["pwd"],
                        "acr": "0",
                        "created_at": now,
                        "live_seq": 0,
                        "seq_counter": 0,
                        "last_refresh_at": now,
                    }
                )
                tokens.append(
                    {
                        "token_hash": hash_token(value),
                        "grant_id": grant_id,
                        "seq": 0,
                        "created_at": now,
                    }
                )
            conn.execute(insert(Grant.__table__), grants)
            conn.execute(insert(RefreshToken.__table__), tokens)
    return out


def mint_access(app, count: int) -> list[str]:
    """``count`` client_credentials access tokens of bench-cc."""
    issuer = app.extensions["latchkey"].issuer
    client = db.session.get(Client, _client_id("client_credentials"))
    scope = client.get_allowed_scope(None)
    return [issuer.access_token(client, scope, None)[0] for _ in range(count)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["refresh", "access"])
    p.add_argument("--count", type=int, required=True)
    args = p.parse_args(argv)
    app = create_app(json.loads(ENV_FILE.read_text()))
    with app.app_context():
        if args.kind == "refresh":
            tokens = mint_refresh(args.count)
        else:
            tokens = mint_access(app, args.count)
    sys.stdout.write("\n".join(tokens) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
