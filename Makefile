# The two commands a user needs: `make demo` and `make test`. Everything else is optional.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo test ui bench test-e2e lint install clean-data prod-local prod-local-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/liq demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check liq_pipeline liq_pipeline_tests

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python scripts/serve.py $(BIN)/dagster dev -w workspace.yaml --host 127.0.0.1 --port 3000

# The production-shaped instance on this machine (Postgres under data/prod-local, the daemon, queued runs,
# run monitoring, LIQ_STORAGE=parquet): UI on http://127.0.0.1:3000, Ctrl-C stops everything.
prod-local: install
	$(BIN)/python -m liq_pipeline.prod_local serve

prod-local-stop: install
	$(BIN)/python -m liq_pipeline.prod_local stop

# The browser test: Debian's chromium (installed with apt when missing; never a downloaded browser).
test-e2e: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python -m pytest -q -m e2e liq_pipeline_tests/e2e

bench: install
	$(BIN)/python bench/run.py

clean-data:
	rm -rf data/archive-sim data/warehouse data/reports data/cache

# The real-data scorecard: the chain on the real BTCUSDT window (../shared/data/..., or $LIQ_REAL_DATA_DIR),
# read in place, in its own data directory data/score-real/ (never the demo's warehouse).
.PHONY: score-real
score-real: install
	$(BIN)/liq score-real
