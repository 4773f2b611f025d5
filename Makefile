# PainPath — `make run` and `make test` work from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# A Python 3.10 in this order: $PYTHON, a python3.10 that runs, pyenv's 3.10.x.
PYTHON ?= $(shell \
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys' >/dev/null 2>&1; then echo python3.10; \
  elif command -v pyenv >/dev/null 2>&1 && ls -d "$$(pyenv root)"/versions/3.10.*/bin/python3.10 >/dev/null 2>&1; then ls -d "$$(pyenv root)"/versions/3.10.*/bin/python3.10 | sort -V | tail -n1; \
  fi)
PIP_QUIET := 2>&1 | grep -v "^WARNING: Location" || true
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

.PHONY: help install triage-model run test test-unit test-stack test-pg test-stories lint train domain migrate seed chromium bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "No Python 3.10 found: set PYTHON=/path/to/python3.10"; exit 1; }
	@echo "== creating $(VENV) with $(PYTHON)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q -U pip $(PIP_QUIET)
	@$(PY) -m pip install -q -r requirements.txt $(PIP_QUIET)
	@$(PY) -m pip install -q --no-deps -e . $(PIP_QUIET)
	@$(PY) -c "import rasa, rasa_sdk, fastapi, twilio, spacy, alembic, playwright, tokenizers, safetensors" || { echo "install failed"; exit 1; }
	@$(PY) tools/make_spacy_blank.py
	@$(PY) tools/fetch_embeddings.py
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install everything (idempotent)
	@$(PY) tools/make_spacy_blank.py
	@$(PY) tools/fetch_embeddings.py

domain: $(STAMP) ## regenerate bot/domain/checkin_items.yml from the question content
	@$(PY) tools/gen_checkin_domain.py

triage-model: install ## retrain the triage recall layer (data/triage/) and choose its thresholds
	@$(PY) tools/train_triage_model.py

train: install ## train the Rasa model if its inputs changed
	@$(PY) tools/train.py

migrate: install ## apply database migrations (DATABASE_URL, default SQLite under var/)
	@$(BIN)/painpath migrate

seed: migrate ## seed the demo clinic and patient
	@$(BIN)/painpath seed-demo

run: train seed ## start Rasa (5005), actions (5055), web app + scheduler (8000)
	@$(PY) tools/run_stack.py

chromium: ## install Debian's Chromium for the browser tests when missing
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install train chromium ## the whole test suite (SQLite, then the unit tests on PostgreSQL)
	$(BIN)/pytest -q -p no:cacheprovider
	$(MAKE) test-pg

test-pg: install ## every database-backed unit and security test again, on PostgreSQL (127.0.0.1:5432/test), and the 3-worker dispatch test
	PAINPATH_TEST_DATABASE_URL=$${PAINPATH_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test} \
	  $(BIN)/pytest -q -p no:cacheprovider -m "not stack and not browser" tests/unit \
	  tests/security tests/integration/test_dispatch_workers.py

bench: train ## benchmarks (print figures, write bench/results/*.json)
	$(PY) bench/checkin_latency.py

clean: ## remove the venv, models and local data
	rm -rf $(VENV) models var .rasa
