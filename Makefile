# Latchkey: `make run` serves a trial on SQLite; `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := app

.PHONY: run test lint test-sqlite test-postgresql setup tools browser-deps clean

$(BIN)/flask: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/flask

setup: $(BIN)/flask

## Chromium, node and npm: installed when missing (as root), else a loud failure.
tools:
	bash scripts/test-tools.sh

## Serve on http://127.0.0.1:5000 with SQLite under instance/ (development mode).
run: setup
	$(BIN)/flask db upgrade
	$(BIN)/flask dev-setup
	$(BIN)/flask run --host 127.0.0.1 --port 5000

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

## axe-core for the accessibility test, at the version package-lock.json pins.
browser-deps: tools
	npm ci --prefix tests/browser --no-audit --no-fund

test-sqlite: setup tools browser-deps
	LATCHKEY_TEST_DB=sqlite $(BIN)/pytest

test-postgresql: setup tools browser-deps
	LATCHKEY_TEST_DB=postgresql $(BIN)/pytest

## Lint, then the whole suite on SQLite and on PostgreSQL.
test: lint test-sqlite test-postgresql

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache tests/browser/node_modules
