# pachflow — two commands matter: `make demo` (run the pipeline locally) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install test lint format demo down airflow-ui bench clean java-check

help:
	@echo "make demo   - install, start pachd-lite + MLflow, run the fraud_detection DAG on generated data"
	@echo "make test   - install, lint (ruff) and run the test suite"
	@echo "make lint | format | bench | down | airflow-ui | clean"

# Re-install only when a dependency file changes (the stamp is newer otherwise).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; pachflow needs Python 3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@# Spark's classes pre-parsed for the pipeline jobs' JVMs (spark_jobs/jvm_archive.py); ~30 s, once.
	$(BIN)/python -m spark_jobs.jvm_archive
	@touch $(STAMP)

install: $(STAMP)

java-check:
	@$(PYTHON) pachflow_tools/javacheck.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install java-check lint
	$(BIN)/python -m pytest

demo: install java-check
	$(BIN)/python -m pachflow_tools.demo

down: install
	$(BIN)/pachflow local down

airflow-ui: install
	$(BIN)/pachflow local airflow-ui $(if $(AIRFLOW_PORT),--port $(AIRFLOW_PORT))

bench: install java-check
	$(BIN)/python benchmarks/run_all.py

clean:
	-$(BIN)/pachflow local down 2>/dev/null
	rm -rf $(VENV) .local .pytest_cache .ruff_cache build *.egg-info spark-warehouse
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
