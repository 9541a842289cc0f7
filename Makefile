# The README's commands. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check bench install migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || (echo "Python 3.11+ is required" && exit 1)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

## Start API + worker on embedded PostgreSQL and Redis (or DATABASE_URL / REDIS_URL when set).
run: $(STAMP)
	$(BIN)/profile-groups run

## Run the whole test suite (TEST_DATABASE_URL / TEST_REDIS_URL, else embedded servers).
test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks migrations
	$(BIN)/ruff format --check src tests benchmarks migrations
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

migrate: $(STAMP)
	$(BIN)/profile-groups migrate

## Benchmarks against a running server: each prints its numbers beside the bare-SQL baseline.
BENCH_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/0
bench: $(STAMP)
	for b in members profiles_bulk ingest evaluate; do \
	  DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) $(BIN)/python benchmarks/$$b.py || exit 1; \
	done

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
