# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
AIRFLOW_VERSION ?= 3.3.2
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint docs bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" "apache-airflow==$(AIRFLOW_VERSION)"
	@# The editable install leaves metadata in the source tree; with the repo on sys.path (tests, demo)
	@# Airflow would then find the plugin entry point twice.
	rm -rf *.egg-info
	touch $@

install: $(VENV)/.installed

## Run the end-to-end example against the local Iterable simulator (embedded SQLite queue).
demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) demo/run_demo.py

lint: install
	$(VENV)/bin/ruff check airflow_provider_iterable tests bench example_dags demo
	$(VENV)/bin/ruff format --check airflow_provider_iterable tests bench example_dags demo
	$(VENV)/bin/mypy

## The API reference from the docstrings (build/api/index.html); warnings and broken
## cross-references fail the build.
docs: install
	$(VENV)/bin/sphinx-build -b html -E -a -W --keep-going -n -q docs/api build/api

## The whole suite: lint, types, the API reference, and every test (slow reliability tests included).
test: lint docs
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

## The quick subset for local iteration.
test-fast: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## Every benchmark in bench/ (short mode); writes bench/RESULTS.md. P2 needs a PostgreSQL server:
## override BENCH_POSTGRES_URL (set it empty to skip P2).
BENCH_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
bench: install
	ITERABLE_TEST_POSTGRES_URL="$(BENCH_POSTGRES_URL)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .venv-* .airflow-demo build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
