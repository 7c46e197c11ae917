# The two commands: `make run` serves fieldsync on http://127.0.0.1:8000, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
VAR_DIR := $(or $(FIELDSYNC_VAR_DIR),var)

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/fieldsync db upgrade
	$(BIN)/fieldsync demo load
	rm -rf $(VAR_DIR)/metrics && mkdir -p $(VAR_DIR)/metrics
	@echo "fieldsync is serving on http://$(HOST):$(PORT)  (stop with Ctrl-C)"
	PROMETHEUS_MULTIPROC_DIR=$(VAR_DIR)/metrics $(BIN)/gunicorn --config python:server.gunicorn_conf \
		--workers $(WORKERS) --bind $(HOST):$(PORT) 'server.wsgi:app'

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed-dev
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
