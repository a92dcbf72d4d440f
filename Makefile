# The two commands of the README are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(PYTHON) scripts/services.py
STAMP := $(VENV)/.installed

.PHONY: install run test lint unit services stop bench clean

# The virtualenv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(STAMP)

# Local Kafka (KRaft, from Maven Central) and Redis in the background, unless
# KAFKA_BOOTSTRAP_SERVERS / REDIS_URL name running servers. Prints the settings to export.
services:
	@$(SERVICES) start

stop:
	@$(SERVICES) stop

# The engine with local Kafka and Redis, fed by the demo generator; tag changes scroll by.
run: install
	@bash scripts/run.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy rules state streams connectors

# Everything: lint, types, unit tests and integration tests against a real broker and Redis
# (started for the session by tests/conftest.py unless KAFKA_BOOTSTRAP_SERVERS is set).
test: lint
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest -m "not integration"

# The benchmarks also need the bench-only extra (Quix Streams, a baseline of bench/throughput.py).
bench: install
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .cache/services .cache/test-services
