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

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

migrate: $(STAMP)
	$(BIN)/profile-groups migrate

bench: $(STAMP)
	$(BIN)/python benchmarks/members.py

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
