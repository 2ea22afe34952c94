# JackpotX: `make run` (embedded: SQLite, in-process jobs) and `make test` (the suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test test-embedded lint format install install-test migrate seed bench clean \
	reconcile flask messages

# The message catalogues (docs/i18n.md): the .po files are in git, the compiled .mo files are
# build output, rebuilt here whenever a .po changes (the app also compiles a missing one at
# start outside production).
PO_FILES := $(wildcard app/translations/*/LC_MESSAGES/messages.po)
MO_FILES := $(PO_FILES:.po=.mo)

$(BIN)/python:
	@echo "==> Creating the virtualenv in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changed. pip prints each package as it goes: the first
# install downloads ~80 packages and takes a few minutes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "==> Installing JackpotX and its dependencies (first time: a few minutes)"
	@{ $(BIN)/pip install --progress-bar off -e . 2>&1; echo $$? > $(VENV)/.pip-status; } \
		| grep -E '^(Collecting|Successfully|ERROR)'; exit $$(cat $(VENV)/.pip-status)
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	@echo "==> Installing JackpotX with the test tools (first time: a few minutes)"
	@{ $(BIN)/pip install --progress-bar off -e '.[test]' 2>&1; echo $$? > $(VENV)/.pip-status; } \
		| grep -E '^(Collecting|Successfully|ERROR)'; exit $$(cat $(VENV)/.pip-status)
	touch $@ $(VENV)/.installed

%.mo: %.po | $(VENV)/.installed
	$(BIN)/pybabel compile --statistics -i $< -o $@

install: $(VENV)/.installed $(MO_FILES)
install-test: $(VENV)/.installed-test $(MO_FILES)

# Re-extract the translatable texts of the code and merge them into each catalogue (new
# texts empty, changed ones fuzzy): then translate what it reports and commit the .po files.
messages: install
	$(BIN)/python -m app.core.i18n_extract

migrate: install
	@echo "==> Migrating the database (SQLite under instance/ unless DATABASE_URL is set)"
	$(FLASK) db upgrade

seed: migrate
	@echo "==> Seeding the demo data (safe to re-run)"
	$(FLASK) jackpotx seed-demo

# Operator commands without activating the venv: `make flask ARGS="jackpotx jobs schedule"`.
flask: install
	$(FLASK) $(ARGS)

# The tour's ledger check: exit 1 with the list when a wallet's ledger sum differs.
reconcile: install
	$(FLASK) jackpotx wallets reconcile

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
