# Two commands for a newcomer: `make run` (the main job) and `make test` (the tests).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all lint bench bench-big figures clean install

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m jaxsgd +experiment=race

test: $(STAMP)
	$(BIN)/ruff check jaxsgd tests experiments benchmarks
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

lint: $(STAMP)
	$(BIN)/ruff check jaxsgd tests experiments benchmarks

bench-big: $(STAMP)
	$(BIN)/python benchmarks/bench.py --big

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

figures: $(STAMP)
	$(BIN)/python experiments/make_figures.py $(if $(SCALE),--scale $(SCALE))

clean:
	rm -rf outputs multirun figures .pytest_cache
