# The two commands: `make run` and `make test`. Both work on a fresh machine with only Python 3.11
# (`make test`'s contract check also needs Node.js 18+ and npm).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WEB_HOST ?= 127.0.0.1
WEB_PORT ?= 8000
export PUBLIC_BASE_URL ?= http://$(WEB_HOST):$(WEB_PORT)
export WEB_HOST WEB_PORT

.PHONY: run test e2e install install-test lint contract contract-tool migrate seed ci clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_sandbox

## make run: install, migrate, seed the sandbox, then web + Celery worker + beat until Ctrl-C.
# Human-readable log lines on a terminal; production keeps the JSON default.
run: seed
	@echo "Starting web, worker and beat on $(PUBLIC_BASE_URL)/ (Ctrl-C stops all three)"
	PATH="$(CURDIR)/$(BIN):$$PATH" LOG_FORMAT=$${LOG_FORMAT:-console} $(BIN)/honcho start -f Procfile.dev

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

## make contract: each published version's OpenAPI document (openapi/<version>.json) against the code.
# Fails on any difference; Optic (tools/contract, installed from its lock file) says whether it breaks
# clients. Additive: `manage.py openapi_export` and commit. Breaking: a new version (docs/versioning.md).
CONTRACT_TOOL := tools/contract/node_modules/.bin/optic

$(CONTRACT_TOOL): tools/contract/package.json tools/contract/package-lock.json
	@command -v npm >/dev/null || (echo "The contract check needs Node.js 18+ and npm (Debian: apt-get install nodejs npm)" && exit 1)
	cd tools/contract && npm ci --no-audit --no-fund
	touch $@

contract-tool: $(CONTRACT_TOOL)

contract: install-test $(CONTRACT_TOOL)
	$(BIN)/python manage.py openapi_check

## make test: lint, migrations check, the contract check and the whole suite (browser tests are `make e2e`).
test: lint contract
	$(BIN)/pytest

## make e2e: browser tests, Debian's Chromium driven by Playwright against a live server.
e2e: install-test
	@test -x /usr/bin/chromium || (echo "Installing Debian's chromium for the browser tests" && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	$(BIN)/pytest -m e2e tests/e2e

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache tools/contract/node_modules
