"""Password sign-ins per second per core, at Latchkey's default argon2id
cost and at the cost Keycloak's sizing guide plans with.

    python bench/signin.py --db sqlite -n 40

Keycloak's sizing guide plans 15 password sign-ins per second per vCPU
with argon2id at 5 passes over 7 MiB (its default hashing, single lane);
Latchkey's default is OWASP's 2 passes over 19 MiB. For each cost this
measures, on one core (``time.process_time`` of this process):

- ``argon2 verify``: one ``PasswordHasher.verify`` of the right password;
- ``sign-in``: the whole browser sign-in through the app, in process: GET
  /login (the form and its CSRF token), POST /login with the right
  password, which verifies, records the sign-in and starts a session.

Rate limits are off (every sign-in comes from one address). The figures
are CPU per sign-in on this machine, so they compare with Keycloak's plan
only as a ratio of costs measured here: run both costs in the same run.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data import Database  # noqa: E402
from bench.sidebyside import latchkey_env  # noqa: E402

EMAIL = "signin@bench.example"
PASSWORD = "a long bench passphrase 4096"
COSTS = {
    "default (t=2, 19 MiB)": {},
    "Keycloak (t=5, 7 MiB)": {
        "LATCHKEY_PASSWORD_TIME_COST": "5",
        "LATCHKEY_PASSWORD_MEMORY_KIB": str(7 * 1024),
    },
}
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def measure(db_kind: str, extra: dict, n: int) -> tuple[float, float]:
    """(µs of CPU per argon2 verify, µs of CPU per whole sign-in)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.accounts.services import create_account
    from app.extensions import db
    from app.keys.admin import ensure_keys

    database = Database(db_kind)
    try:
        env = latchkey_env(database.url, None)
        env.update(extra, LATCHKEY_RATELIMIT_ENABLED="false")
        app = create_app(env)
        passwords = app.extensions["latchkey"].passwords
        with app.app_context():
            upgrade()
            ensure_keys(app.extensions["latchkey"].keys)
            create_account(passwords, EMAIL, PASSWORD, email_verified=True)
            db.session.commit()
            stored = db.session.execute(
                db.text("SELECT password_hash FROM accounts WHERE email = :e"),
                {"e": EMAIL},
            ).scalar_one()
            db.session.remove()
        verify = []
        for _ in range(n):
            began = time.process_time()
            passwords.hasher.verify(stored, PASSWORD)
            verify.append(time.process_time() - began)
        sign_in = []
        for _ in range(n):
            browser = app.test_client()
            began = time.process_time()
            page = browser.get("/login").get_data(as_text=True)
            match = _CSRF.search(page)
            if match is None:
                raise SystemExit("no csrf_token on /login")
            answer = browser.post(
                "/login",
                data={
                    "csrf_token": match.group(1),
                    "email": EMAIL,
                    "password": PASSWORD,
                    "next": "",
                },
            )
            sign_in.append(time.process_time() - began)
            if answer.status_code != 302 or "/login" in answer.location:
                raise SystemExit(f"sign-in failed: {answer.status_code}")
        return _median(verify) * 1e6, _median(sign_in) * 1e6
    finally:
        database.drop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("-n", type=int, default=40, help="sign-ins per cost")
    args = p.parse_args(argv)
    print("| argon2id cost | verify, ms CPU | sign-in, ms CPU | sign-ins/s per core |")
    print("| --- | ---: | ---: | ---: |")
    for label, extra in COSTS.items():
        verify, sign_in = measure(args.db, extra, args.n)
        print(
            f"| {label} | {verify / 1000:.1f} | {sign_in / 1000:.1f} "
            f"| {1e6 / sign_in:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
