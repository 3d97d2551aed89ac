# Latchkey: `make run` serves a trial on SQLite; `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LINT_VENV := .venv-lint
export FLASK_APP := app

.PHONY: run test lint test-sqlite test-postgresql setup tools node-deps clean

$(BIN)/flask: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/flask

## checkov and kubernetes-validate, apart: checkov pins packages of its own.
$(LINT_VENV)/bin/checkov: deploy/lint-requirements.txt
	$(PY) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install -q --upgrade pip
	$(LINT_VENV)/bin/pip install -q -r deploy/lint-requirements.txt
	touch $(LINT_VENV)/bin/checkov

setup: $(BIN)/flask $(LINT_VENV)/bin/checkov

## Chromium, node and npm: installed when missing (as root), else a loud failure.
tools:
	bash scripts/test-tools.sh

## The conformance suite's relying party (openid-client), from the lock file.
NODE_DEPS := tests/conformance/node_modules/.package-lock.json
$(NODE_DEPS): tests/conformance/package.json tests/conformance/package-lock.json | tools
	npm ci --prefix tests/conformance --no-audit --no-fund
	touch $(NODE_DEPS)

## axe-core for the accessibility check of every page, from its lock file.
AXE_DEPS := tests/browser/node_modules/.package-lock.json
$(AXE_DEPS): tests/browser/package.json tests/browser/package-lock.json | tools
	npm ci --prefix tests/browser --no-audit --no-fund
	touch $(AXE_DEPS)

node-deps: $(NODE_DEPS) $(AXE_DEPS)

## Serve on http://127.0.0.1:5000 with SQLite under instance/ (development mode).
run: $(BIN)/flask
	$(BIN)/flask db upgrade
	$(BIN)/flask keys
	$(BIN)/flask dev-setup
	$(BIN)/flask run --host 127.0.0.1 --port 5000

## Drift checks too: types (mypy, non-strict) and models vs migrations.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	BIN=$(BIN) bash scripts/check-migrations.sh
	$(BIN)/hadolint Dockerfile
	$(LINT_VENV)/bin/kubernetes-validate --strict --quiet \
		$(filter-out %/kustomization.yaml,$(wildcard deploy/kubernetes/*.yaml))
	$(LINT_VENV)/bin/checkov --config-file deploy/checkov.yaml

test-sqlite: setup tools node-deps
	LATCHKEY_TEST_DB=sqlite $(BIN)/pytest

test-postgresql: setup tools node-deps
	LATCHKEY_TEST_DB=postgresql $(BIN)/pytest

## Lint, then the whole suite on SQLite and on PostgreSQL.
test: lint test-sqlite test-postgresql

clean:
	rm -rf $(VENV) $(LINT_VENV) instance .pytest_cache .ruff_cache tests/conformance/node_modules tests/browser/node_modules
