# The two commands of the quick start. Both work on a fresh machine: they create
# .venv, install what they need (pinned by constraints.txt), then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
# uv (pinned in constraints.txt like everything else, bootstrapped with the venv's pip) does
# the installs: a cold `.venv/.test` takes about 30 s with it, 75 s with pip alone. Bytecode
# is compiled at install time, as pip does: without it every process compiles what it imports.
UV := $(BIN)/uv pip install --python $(BIN)/python -q --compile-bytecode -c constraints.txt
UNINSTALL := $(BIN)/uv pip uninstall --python $(BIN)/python -q

.PHONY: demo test chromium lint typecheck unit bench lock clean strip screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) uv
	@# pip again if uv cannot reach the index (the same pins either way, only slower).
	$(UV) -e . || $(PIP) -e .
	@# rfc3987-syntax (via jsonschema[format-nongpl]) adds 6-13 s of import time to every
	@# Jupyter process; nothing we run validates those formats.
	-$(UNINSTALL) rfc3987-syntax
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(UV) -e ".[test]" || $(PIP) -e ".[test]"
	-$(UNINSTALL) rfc3987-syntax
	@# Notebooks are committed without outputs: git strips them as they are staged.
	-[ -d .git ] && $(BIN)/nbstripout --install
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

$(VENV)/.bench: $(VENV)/.test
	$(UV) -e ".[bench]" || $(PIP) -e ".[bench]"
	@# JupySQL's JupyterLab plugin would change the Lab the tests drive; the benchmark
	@# needs only its magics.
	-$(UNINSTALL) jupysql-plugin
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m benchmarks

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock: $(VENV)/.test
	$(BIN)/pip freeze --exclude-editable | grep -v '^p2p2p' > constraints.txt

clean:
	-[ -d .git ] && [ -x $(BIN)/nbstripout ] && $(BIN)/nbstripout --uninstall
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Strip the notebooks' outputs (git does it on staging once `make test` set the filter up).
strip: $(VENV)/.test
	$(BIN)/nbstripout notebooks/*.ipynb p2p2p/dashboards/*.ipynb
