# shardline: `make demo` runs the main job on the embedded local stack; `make test` checks everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test check unit integration bench bench-webhook chaos compat-deps deploy-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/shardline demo $(DEMO_ARGS)

check: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: check compat-deps pg-deps deploy-deps
	$(BIN)/pytest -q -p no:cacheprovider

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

compat-deps: install
	bash tests/compat/install.sh

# checkov, hadolint, kubernetes-validate, python-hcl2 in .venv-deploy/; promtool from apt
deploy-deps:
	bash deploy/check/install.sh

pg-deps: install
	bash tests/postgres/install.sh

bench: install
	$(BIN)/python bench/run.py

bench-sinks: install
	$(BIN)/python bench/sinks_postgres.py

bench-webhook: install
	$(BIN)/python bench/sinks_webhook.py

# the chaos suite with sinks (make chaos-sinks [DURATION=s] [TARGET=postgres|archive])
TARGET ?= postgres
chaos-sinks: install pg-deps
	$(BIN)/python -m tests.chaos.sinks_run --duration $(DURATION) --target $(TARGET)

# make chaos [DURATION=s] [SEED=n] [BOUNDED=1: the run of make test] [CHAOS_ARGS=...]
DURATION ?= 120
chaos: install
	$(BIN)/python -m tests.chaos.run $(if $(BOUNDED),--bounded,--duration $(DURATION)) \
		$(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .venv-deploy .pytest_cache .mypy_cache .ruff_cache .hypothesis src/*.egg-info
