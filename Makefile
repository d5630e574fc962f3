# The two commands of the quick start. Both work on a fresh machine: they create
# .venv, install what they need (pinned by constraints.txt), then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test chromium lint typecheck unit bench lock clean notebooks screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@# rfc3987-syntax (via jsonschema[format-nongpl]) adds 6-13 s of import time to every
	@# Jupyter process; nothing we run validates those formats.
	-$(BIN)/pip uninstall -y -q rfc3987-syntax
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) -e ".[test]"
	-$(BIN)/pip uninstall -y -q rfc3987-syntax
	touch $@

demo: $(VENV)/.base
	$(BIN)/p2p2p demo

test: $(VENV)/.test chromium lint typecheck unit

# Browser tests drive Debian's chromium (Playwright cannot download browsers here); the
# relay-behind-TLS test runs docs/relay.md's nginx settings against a real nginx.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@{ command -v chromium && { command -v nginx || test -x /usr/sbin/nginx; } && command -v openssl; } >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium, nginx and openssl for the tests (a few minutes, once)"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium nginx openssl; }

lint: $(VENV)/.test
	$(BIN)/ruff check p2p2p tests benchmarks
	$(BIN)/ruff format --check p2p2p tests benchmarks

typecheck: $(VENV)/.test
	$(BIN)/mypy

unit: $(VENV)/.test
	$(BIN)/pytest

# The pictures in docs/ and the README, taken anew by the browser tests that make them.
screenshots: $(VENV)/.test chromium
	P2P2P_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/browser

bench: $(VENV)/.test
	$(BIN)/python -m benchmarks

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock: $(VENV)/.test
	$(BIN)/pip freeze --exclude-editable | grep -v '^p2p2p' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Re-run the notebooks and store their outputs (nbval compares against these).
notebooks: $(VENV)/.test
	$(BIN)/python -m tests.helpers.notebook_env
