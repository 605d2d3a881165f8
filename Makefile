# The two commands a user needs: `make demo` and `make test`. Everything else is optional.
# `make demo` and `make ui` install only what the product needs (`pip install -e .`); `make test`,
# `make lint`, `make bench` and `make test-e2e` add the dev extras (pytest, ruff, playwright, the
# Kubernetes/Postgres clients the deployment tests validate against).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo test test-fast ui serve bench bytecode test-bench test-e2e lint install install-app venv-size clean-data prod-local prod-local-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The product alone: what `liq`, `make demo` and `make ui` need.
$(VENV)/.installed-app: pyproject.toml | $(BIN)/python
	@echo "installing liq_pipeline into $(VENV) (the first time takes about a minute) ..."
	$(BIN)/pip install --quiet -e .
	$(MAKE) --no-print-directory bytecode
	touch $@

# The product plus the dev extras (tests, lint, browser test, deployment-file validation).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing liq_pipeline with the dev extras into $(VENV) ..."
	$(BIN)/pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory bytecode
	touch $(VENV)/.installed-app $@

# The package's bytecode, as `pip install` of a wheel writes it: an editable install leaves it to the first
# import, and with PYTHONDONTWRITEBYTECODE set there is none, so every cold `liq heatmap` compiled its modules
# again (about 12 ms of its CPU, docs/answer-files.md). Files already up to date are skipped; an edited module
# is compiled again at its next import either way (a stale .pyc is never used).
bytecode:
	@$(BIN)/python -m compileall -q liq_pipeline > /dev/null

install-app: $(VENV)/.installed-app

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# Every storage of the instance created once, under a lock, before any command can race on it (two first
# commands at once on a fresh DAGSTER_HOME would leave Dagster's SQLite storage with two schema heads).
INSTANCE := $(DAGSTER_HOME)/.liq-initialised
$(INSTANCE): $(DAGSTER_HOME)/dagster.yaml | $(VENV)/.installed-app
	$(BIN)/python -m liq_pipeline.apps.instance_setup $(DAGSTER_HOME)

.PHONY: instance
instance: install-app $(INSTANCE)

demo: install-app $(INSTANCE)
	$(BIN)/liq demo

# Three worker processes (pytest-xdist) for two cores: the Postgres instance test spends most of its time
# waiting on the Dagster daemon's 30-second ticks, and the third worker keeps both cores busy meanwhile. Each
# test file runs on one worker so a module's fixtures are built once (except the few files conftest.py lists
# in SPREAD, whose tests are scheduled one by one), in the order conftest.py gives (costliest first; xdist
# would otherwise start the files with the most tests first); the simulated market the integration tests
# share is built once for all (docs/development.md).
test: install
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder

# The inner loop: everything but the tests marked slow, in one process (docs/development.md).
test-fast: install
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

lint: install
	$(BIN)/ruff check liq_pipeline liq_pipeline_tests

ui: install-app $(INSTANCE)
	$(BIN)/python scripts/serve.py $(BIN)/dagster dev -w workspace.yaml --host 127.0.0.1 --port 3000

# The heatmap page over the warehouse (read-only) on http://127.0.0.1:8050: docs/serve.md.
serve: install-app
	$(BIN)/liq serve

# The production-shaped instance on this machine (Postgres under data/prod-local, the daemon, queued runs,
# run monitoring, LIQ_STORAGE=parquet): UI on http://127.0.0.1:3000, Ctrl-C stops everything.
prod-local: install
	$(BIN)/python -m liq_pipeline.deploy.prod_local serve

prod-local-stop: install
	$(BIN)/python -m liq_pipeline.deploy.prod_local stop

# The browser test: Debian's chromium (installed with apt when missing; never a downloaded browser).
test-e2e: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python -m pytest -q -m e2e liq_pipeline_tests/e2e

bench: install bytecode
	$(BIN)/python bench/run.py

# The benchmark harness end to end at tiny scale (every section, about 2-3 minutes; not part of make test).
test-bench: install
	$(BIN)/python -m pytest -q -m bench liq_pipeline_tests/project/test_bench.py

# Size of the virtual environment (the README quotes it).
venv-size:
	@du -sh $(VENV)

clean-data:
	rm -rf data/archive-sim data/warehouse data/reports data/cache

# The real-data scorecard: the chain on the real BTCUSDT window (../shared/data/..., or $LIQ_REAL_DATA_DIR),
# read in place, in its own data directory data/score-real/ (never the demo's warehouse).
.PHONY: score-real
score-real: install
	$(BIN)/liq score-real

# Every variant on several simulated markets, scored with the validation yardsticks (`liq compare`): each
# scenario/seed pair simulated and materialized in data/compare/<pair>/, the table and the bootstrap
# comparisons printed as markdown and written to data/reports/compare.{md,json}. E.g.
# make compare PAIRS="calm/7 calm/7/no-ofi" JOBS=2
PAIRS ?=
JOBS ?= 1
.PHONY: compare
compare: install-app $(INSTANCE)
	$(BIN)/liq compare $(PAIRS) --jobs $(JOBS) --markdown
