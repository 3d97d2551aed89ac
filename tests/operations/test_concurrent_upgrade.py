"""Two `flask db upgrade` at once (issue 12 item 5): both succeed, the
schema is migrated once (migrations/env.py, migration_lock)."""

import os
import subprocess
import sys

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.conftest import ROOT, fresh_database, new_kek


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


def _upgrade(url: str, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "FLASK_APP": "app",
        "LATCHKEY_ENV": "testing",
        "LATCHKEY_DATABASE_URL": url,
        "LATCHKEY_SECRET_KEY": "upgrade-test-secret",
        "LATCHKEY_KEY_ENCRYPTION_KEY": new_kek(),
        "LATCHKEY_DEMO_DATA": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _versions(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT version_num FROM alembic_version")
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def test_two_upgrades_at_once_both_succeed(tmp_path):
    """PostgreSQL: the second waits on the advisory lock, then finds the
    head and does nothing. SQLite: the second waits for the first writer
    (busy timeout) and likewise ends at the head."""
    with fresh_database(tmp_path) as url:
        logs = [open(tmp_path / f"upgrade-{n}.log", "w+") for n in (1, 2)]  # noqa: SIM115
        procs = [_upgrade(url, log) for log in logs]
        codes = [proc.wait(timeout=120) for proc in procs]
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
        assert codes == [0, 0], outputs
        assert _versions(url) == [_head()]
        # Each migration ran once: exactly one process logged each step.
        steps = [
            line
            for out in outputs
            for line in out.splitlines()
            if "Running upgrade" in line
        ]
        assert len(steps) == len(set(steps))
        assert len(steps) > 0


def test_upgrade_again_is_a_no_op(tmp_path):
    with fresh_database(tmp_path) as url:
        for _ in range(2):
            with open(tmp_path / "upgrade.log", "w+") as log:
                assert _upgrade(url, log).wait(timeout=120) == 0
                log.seek(0)
                output = log.read()
        assert "Running upgrade" not in output
        assert _versions(url) == [_head()]
