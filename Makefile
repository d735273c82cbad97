# kvconsole: `make run` serves a development deployment, `make test` runs every check.
.DEFAULT_GOAL := help
.PHONY: help run serve test lint bench fuzz load clean

# The machine's default python3 may be older; pick 3.13 (or 3.12) explicitly.
PYTHON ?= $(shell command -v python3.13 2>/dev/null || command -v python3.12 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
# One HTTPS port serves the console, the token service and every vault's endpoint.
PORT ?= $(or $(KVCONSOLE_PORT),8443)
TLS := $(or $(KVCONSOLE_VAR_DIR),var)/tls

help:
	@echo "make run    create the virtualenv, migrate, load demo data and serve on https://localhost:$(PORT)/"
	@echo "make serve  the production server (granian, KVCONSOLE_WORKERS workers; settings from the environment)"
	@echo "make test   install test dependencies and run ruff, mypy, the migration check and pytest on SQLite and PostgreSQL"
	@echo "make bench  run the benchmarks in tests/benchmarks and print their ratios"
	@echo "make fuzz   fuzz the vault endpoint longer than make test does (FUZZ_EXAMPLES per operation)"
	@echo "make load   the production server under load on PostgreSQL: a worker killed, the database restarted"

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo "kvconsole needs Python 3.13 or 3.12, and neither python3.13 nor python3.12 is on PATH." >&2; \
		echo "Install one (for example 'pyenv install 3.13') and run make again." >&2; exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' || { \
		echo "$(PYTHON) is older than Python 3.12; kvconsole needs 3.13 or 3.12." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

run: export KVCONSOLE_VAULT_PORT = $(PORT)
run: export KVCONSOLE_CONSOLE_HOST = localhost:$(PORT)
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	KVCONSOLE_JSON_LOGS=0 $(PY) manage.py demo
	KVCONSOLE_DEBUG=1 $(PY) -m granian --interface wsgi --host $(HOST) --port $(PORT) \
		--ssl-certificate $(TLS)/server.pem --ssl-keyfile $(TLS)/server-key.pem \
		--workers 1 --blocking-threads 4 --no-ws kvconsole.wsgi:application

# Production mode: refuses development defaults, migrates, collects static files, then serves
# (kvconsole/serve.py; the README's Production section says what to set).
serve: export KVCONSOLE_ENV = production
serve: $(VENV)/.installed
	$(PY) -m kvconsole.serve

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .
	$(PY) manage.py makemigrations --check --dry-run

# The JavaScript SDK the vault endpoint is tested with (tests/js), pinned by its lock file.
JS_SDK := tests/js/node_modules/.package-lock.json
$(JS_SDK): tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null || { echo "The tests need Node.js 20 and npm (Debian: apt-get install nodejs npm)." >&2; exit 1; }
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	@touch $@

# The whole suite twice: on SQLite, then on a throwaway PostgreSQL cluster that
# tests/postgres.py starts (Debian: apt-get install postgresql) and removes afterwards.
# Each run is shared out between TEST_WORKERS processes (pytest-xdist), one per core.
TEST_WORKERS ?= 2
test: lint $(JS_SDK)
	env -u DATABASE_URL $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal
	$(PY) -m tests.postgres $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

# Benchmarks use a database file (WAL mode), as a deployment does, not an in-memory one.
bench: $(VENV)/.installed
	@command -v wrk >/dev/null || { echo "The endpoint benchmark drives the server with wrk (Debian: apt-get install wrk)." >&2; exit 1; }
	mkdir -p var
	KVCONSOLE_TEST_SQLITE_PATH=$(CURDIR)/var/bench.sqlite3 \
		$(PY) -m pytest tests/benchmarks -o addopts="-p no:cacheprovider" -q -s

# Not part of make test: 2 minutes of load against the production server (tests/load.py).
load: $(VENV)/.installed
	@command -v wrk >/dev/null || { echo "make load drives the server with wrk (Debian: apt-get install wrk)." >&2; exit 1; }
	$(PY) -m tests.load

# make test fuzzes the vault endpoint briefly; this is the long run (FUZZ_EXAMPLES=2000 for longer).
FUZZ_EXAMPLES ?= 500
fuzz: $(VENV)/.installed
	KVCONSOLE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/keys/test_api_fuzz.py \
		tests/keys/test_api_hostile.py -p no:logging -q

clean:
	rm -rf $(VENV)
