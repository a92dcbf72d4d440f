# The two commands of the README are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(PYTHON) scripts/services.py
STAMP := $(VENV)/.installed

.PHONY: install cockpit run test lint unit services stop bench clean

# The virtualenv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(STAMP)

# The cockpit's chart library, Apache ECharts, from the npm registry (pinned by
# cockpit/package-lock.json), copied into the git-ignored cockpit/build/ that the workers serve.
COCKPIT_BUILT := cockpit/build/echarts.min.js
$(COCKPIT_BUILT): cockpit/package.json $(wildcard cockpit/package-lock.json)
	@command -v npm >/dev/null || { echo "npm (Node.js 18+) is required to build the cockpit"; exit 1; }
	cd cockpit && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	mkdir -p cockpit/build
	cp cockpit/node_modules/echarts/dist/echarts.min.js $@

cockpit: $(COCKPIT_BUILT)

# Local Kafka (KRaft, from Maven Central) and Redis in the background, unless
# KAFKA_BOOTSTRAP_SERVERS / REDIS_URL name running servers. Prints the settings to export.
services:
	@$(SERVICES) start

stop:
	@$(SERVICES) stop

# The engine with local Kafka and Redis, fed by the demo generator; tag changes scroll by.
run: install cockpit
	@bash scripts/run.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy rules state streams connectors

# Everything: lint, types, unit tests and integration tests against a real broker and Redis
# (started for the session by tests/conftest.py unless KAFKA_BOOTSTRAP_SERVERS is set).
test: lint cockpit
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest -m "not integration"

# The benchmarks also need the bench-only extra (Quix Streams, a baseline of bench/throughput.py).
bench: install
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench

# .cache/run (make run's worker state) goes with .cache/services (the local Kafka): a worker whose
# local store is ahead of a new, empty changelog refuses to start.
clean:
	rm -rf $(VENV) .cache/services .cache/test-services .cache/run cockpit/node_modules cockpit/build
