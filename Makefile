# jobsync — one target per gate. `make run` and `make test` work in a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
CHROMIUM := /usr/bin/chromium
PYTEST_WORKERS ?= 2

.PHONY: help install run test lint unit handlers e2e browser validate build deploy clean

help:
	@echo "make run       the whole service on 127.0.0.1:$${JOBSYNC_PORT:-8001} (no AWS, no internet)"
	@echo "make test      every test: unit, handlers, template lint, end-to-end, browser"
	@echo "make validate  sam validate --lint"
	@echo "make build     sam build (the Lambda artefacts)"
	@echo "make deploy    sam build && sam deploy --guided"

$(VENV)/.installed: requirements-dev.txt layers/jobsync/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	test -d $(SAM_VENV) || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r requirements-sam.txt
	touch $@

# Debian's chromium for the browser tests (Playwright never downloads a browser here).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
	else echo "install Debian's chromium: sudo apt-get install -y --no-install-recommends chromium"; exit 1; fi

install: $(VENV)/.installed $(SAM_VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m local.stack

test: lint $(SAM_VENV)/.installed $(CHROMIUM)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

handlers: $(VENV)/.installed
	$(PY) -m pytest -q tests/handlers

e2e: $(VENV)/.installed
	$(PY) -m pytest -q -m e2e

browser: $(VENV)/.installed $(CHROMIUM)
	$(PY) -m pytest -q -m browser

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check layers functions local tests

validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint --template template.yaml --region us-east-1

build: $(SAM_VENV)/.installed
	$(SAM) build

deploy: build
	$(SAM) deploy --guided

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache artifacts
