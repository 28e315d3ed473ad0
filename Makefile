# deskmate — `make run` starts the service, `make test` runs the whole suite.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test e2e lint bench clean

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
	$(VENV)/bin/deskmate serve

test: $(STAMP)
	$(PY) -m pytest

# The browser test: headless Debian chromium driven by Playwright (no browser download).
# Its file name keeps it out of `make test`; it is named here explicitly.
$(VENV)/.installed-e2e: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,e2e]'
	@touch $@

e2e: $(VENV)/.installed-e2e
	@test -x /usr/bin/chromium || { echo "make e2e needs Debian's chromium: apt-get install -y chromium"; exit 1; }
	$(PY) -m pytest tests/e2e/webchat_browser.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
