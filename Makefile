# The two commands: `make run` and `make test`. Both work on a fresh machine with only Python 3.11.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WEB_HOST ?= 127.0.0.1
WEB_PORT ?= 8000
export PUBLIC_BASE_URL ?= http://$(WEB_HOST):$(WEB_PORT)
export WEB_HOST WEB_PORT

.PHONY: run test e2e install install-test lint migrate seed ci clean

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

## make test: lint, migrations check and the whole suite (browser tests are `make e2e`).
test: lint
	$(BIN)/pytest

## make e2e: browser tests, Debian's Chromium driven by Playwright against a live server.
e2e: install-test
	@test -x /usr/bin/chromium || (echo "Installing Debian's chromium for the browser tests" && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	$(BIN)/pytest -m e2e tests/e2e

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
