#!/usr/bin/env bash
# Models vs migrations: `alembic check` through Flask-Migrate (`flask db
# check`) against a fresh SQLite database upgraded to head, so that a model
# changed without its migration fails `make lint`. Needs no PostgreSQL and
# leaves instance/ alone (the settings below name every file it would touch).
set -euo pipefail
BIN=${BIN:-.venv/bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FLASK_APP=app
export LATCHKEY_ENV=testing
export LATCHKEY_DATABASE_URL="sqlite:///$work/check.sqlite3"
export LATCHKEY_SECRET_KEY=migration-check
LATCHKEY_KEY_ENCRYPTION_KEY=$("$BIN/python" -c \
  'import base64, secrets; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())')
export LATCHKEY_KEY_ENCRYPTION_KEY
# Alembic logs every step at INFO; show it only when something fails.
if ! "$BIN/flask" db upgrade >"$work/upgrade.log" 2>&1; then
  cat "$work/upgrade.log"
  exit 1
fi
if ! "$BIN/flask" db check >"$work/check.log" 2>&1; then
  cat "$work/check.log"
  echo "models and migrations differ: add a migration (flask db migrate), review it" >&2
  exit 1
fi
echo "models match migrations: $(tail -1 "$work/check.log")"
