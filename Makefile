# The two entry points of the README: `make demo` and `make test`.
# Each creates .venv with the machine's python3 if it is missing.

PYTHON ?= python3
VENV ?= .venv
# Options for the demo, e.g. `make demo DEMO_ARGS="--steps 500"`.
DEMO_ARGS ?=
BIN := $(VENV)/bin

.PHONY: demo test test-all lint mutations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/keras-gradinn demo $(DEMO_ARGS)

# The lint (ruff, configured in pyproject.toml) runs first: it takes a second.
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

test-all: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m ""

# Breaks each guarantee of docs/reliability.md on purpose; its test must fail (~25 min).
mutations: $(VENV)/.installed-test
	$(BIN)/python tools/mutations.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
