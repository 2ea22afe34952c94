# JackpotX: `make run` (embedded: SQLite, in-process jobs) and `make test` (the suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test test-embedded lint format install install-test migrate seed bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

migrate: install
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) jackpotx seed-demo

run: seed
	@echo ""
	@echo "JackpotX is starting on http://$(HOST):$(PORT)"
	@echo "  API docs      http://$(HOST):$(PORT)/api/docs"
	@echo "  Back office   http://$(HOST):$(PORT)/admin"
	@echo "  Health        http://$(HOST):$(PORT)/health"
	@echo "  Demo logins   printed above (staff TOTP secrets too)"
	@echo ""
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python wsgi.py

# Style, the import layers (docs/architecture.md) and types: all must be clean.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install-test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite on the embedded default (SQLite + fakeredis), even where the servers answer.
test-embedded: install-test
	JX_TEST_EMBEDDED=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/callbacks.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .hypothesis
