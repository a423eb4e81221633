# The two front doors: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test install install-test benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Run the main job on the embedded SQLite default (in ./demo).
demo: $(VENV)/.installed
	mkdir -p demo
	cd demo && ../$(BIN)/alsql --db sqlite:///alsql-demo.db demo

## Run the whole test suite.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

benchmarks: $(VENV)/.installed-test
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) demo .pytest_cache
